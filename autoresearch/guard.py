"""The metric guard: a static check that an edit of the editable files leaves the read-only files' names alone.

The metric is computed by a read-only file (karpathy's `prepare.evaluate_bpb`), so an edit that rebinds,
shadows, deletes or monkeypatches a name imported from it could report any number it likes. After each
edit, `check` reads the new editable Python files and refuses such a change:

- a binding of a protected name: `evaluate_bpb = ...`, `def evaluate_bpb`, `class`, `import ... as`, a
  parameter, a loop or `with` target, `del evaluate_bpb`, `global evaluate_bpb`;
- a change to a read-only module: `import prepare as p; p.evaluate_bpb = ...`, `del p.x`,
  `setattr(p, ...)`, `p.__dict__[...] = ...`, `sys.modules["prepare"].x = ...`, an attribute set on a
  protected function (`evaluate_bpb.__code__ = ...`);
- `globals()` / `locals()` / `vars()` / `__dict__` written to with a protected or computed key;
- `exec` / `eval` / `compile` of code that is not a string literal (a literal is checked like the file),
  `importlib` / `__import__` of a computed module name;
- a read-only file opened for writing, written, moved or deleted (`open("prepare.py", "w")`,
  `Path("prepare.py").write_text(...)`, `os.remove(...)`, `shutil.copy(..., "prepare.py")`).

Protected names: everything the editable files import from the read-only files (`from prepare import *`
protects every public name of prepare.py), or the config key `protected_names` when set. Only what the
edit introduces is refused: a pattern the baseline already had is left to the user. A static check is no
sandbox; the read-only files' checksums are still verified before every training.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field

from autoresearch.edits import EditResult

DYNAMIC_CODE = {"exec", "eval", "compile"}
DYNAMIC_IMPORT = {"__import__", "import_module", "reload"}
NAMESPACES = {"globals", "locals", "vars"}
WRITE_MODES = set("wax+")
FILE_WRITERS = {
    "write_text", "write_bytes", "unlink", "rename", "replace", "touch", "remove", "rmdir", "truncate", "chmod",
    "symlink_to", "hardlink_to", "link", "symlink", "copy", "copy2", "copyfile", "copyfileobj", "move", "rmtree",
}  # fmt: skip
DICT_WRITERS = {"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str  # e.g. "rebinds evaluate_bpb (imported from prepare.py)"

    def __str__(self) -> str:
        return f"{self.path} line {self.line}: {self.what}"


@dataclass
class _Scope:
    """What one editable file imports from the read-only files."""

    modules: dict[str, str]  # module name -> read-only path (prepare -> prepare.py)
    protected: set[str] | None  # configured names, or None: everything imported
    names: dict[str, str] = field(default_factory=dict)  # local name -> read-only path it came from
    origins: dict[str, str] = field(default_factory=dict)  # local name -> "prepare.py:evaluate_bpb", first import
    aliases: set[str] = field(default_factory=set)  # local names bound to a read-only module
    module_bindings: set[int] = field(default_factory=set)  # ids of Name nodes that bind such a module
    tainted: set[str] = field(default_factory=set)  # local names holding a read-only file's path


def check(
    new: dict[str, str], old: dict[str, str], readonly: dict[str, str], protected: Iterable[str] | None = None
) -> list[Violation]:
    """The violations in the new editable files (path -> source) that the old ones did not have.

    `readonly` maps each read-only path to its source; `protected` restricts the guarded names.
    """
    wanted = set(protected) if protected is not None else None
    found = []
    for path, source in sorted(new.items()):
        if not path.endswith(".py"):
            continue
        before = {v.what for v in scan(path, old.get(path, ""), readonly, wanted)}
        found += [v for v in scan(path, source, readonly, wanted) if v.what not in before]
    return found


def guard_edit(result: EditResult, originals: dict[str, str], readonly: dict[str, str], protected: list[str]) -> EditResult:
    """The edit step's result, refused when the new files touch the read-only files' names (after apply_edits)."""
    if result.refused is not None or not result.files:
        return result
    reason = refusal(check(result.files, originals, readonly, protected or None))
    return result if reason is None else result.model_copy(update={"refused": reason})


def refusal(violations: list[Violation]) -> str | None:
    """One line for the ledger's reason, or None."""
    if not violations:
        return None
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"the metric guard refused it: {violations[0]}{more}; the read-only files' names must stay as they are"


def scan(path: str, source: str, readonly: dict[str, str], protected: set[str] | None) -> list[Violation]:
    """Every violation in one file (used for the new and the old version alike)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []  # the edit step refuses a file that does not compile
    scope = _Scope(modules=_module_names(readonly), protected=protected)
    _collect_imports(tree, scope, readonly)
    _collect_taint(tree, scope, readonly)
    found: list[Violation] = []
    for node in ast.walk(tree):
        for line, what in _node_violations(node, scope, readonly):
            found.append(Violation(path, line, what))
    return sorted(set(found), key=lambda v: (v.line, v.what))


def _module_names(readonly: dict[str, str]) -> dict[str, str]:
    modules = {}
    for path in readonly:
        if path.endswith(".py"):
            dotted = path[:-3].replace("/", ".")
            modules[dotted] = path
            modules[dotted.rsplit(".", 1)[-1]] = path  # `import prepare` from the file's own folder
    return modules


def _public_names(source: str) -> set[str]:
    """The top-level names a `from module import *` brings in."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    return {name for name in names if not name.startswith("_")}


def _collect_imports(tree: ast.AST, scope: _Scope, readonly: dict[str, str]) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in scope.modules:
                    scope.aliases.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in scope.modules:
                ro = scope.modules[node.module]
                for alias in node.names:
                    star = alias.name == "*"
                    imported = _public_names(readonly[ro]) if star else {alias.name}
                    if scope.protected is not None:
                        imported &= scope.protected
                    for name in imported:
                        local = name if star else alias.asname or alias.name
                        scope.names[local] = ro
                        scope.origins.setdefault(local, f"{ro}:{name}")
            for alias in node.names:  # `from pkg import prepare`
                if f"{node.module}.{alias.name}" in scope.modules or alias.name in scope.modules:
                    scope.aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):  # m = importlib.import_module("prepare"); m = sys.modules["prepare"]
        if isinstance(node, ast.Assign) and _is_module(node.value, scope):
            bound = [t for t in node.targets if isinstance(t, ast.Name)]
            scope.aliases |= {t.id for t in bound}
            scope.module_bindings |= {id(t) for t in bound}


def _collect_taint(tree: ast.AST, scope: _Scope, readonly: dict[str, str]) -> None:
    """Names assigned an expression that spells a read-only file's path (p = Path("prepare.py"))."""
    for _ in range(2):  # one level of indirection more: q = p.parent / "prepare.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr) and node.value is not None:
                if _names_file(node.value, scope, readonly):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    scope.tainted |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _names_file(node: ast.AST, scope: _Scope, readonly: dict[str, str]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            if any(sub.value == ro or sub.value.endswith("/" + ro) for ro in readonly):
                return True
            if any(sub.value == ro.rsplit("/", 1)[-1] for ro in readonly):
                return True
        if isinstance(sub, ast.Name) and sub.id in scope.tainted:
            return True
    return False


def _is_module(node: ast.AST, scope: _Scope) -> bool:
    """Does this expression evaluate to a read-only module?"""
    if isinstance(node, ast.Name):
        return node.id in scope.aliases
    if isinstance(node, ast.Subscript):  # sys.modules["prepare"]
        key = node.slice
        return isinstance(key, ast.Constant) and key.value in scope.modules
    if isinstance(node, ast.Call) and _call_name(node) in DYNAMIC_IMPORT and node.args:
        first = node.args[0]
        return isinstance(first, ast.Constant) and first.value in scope.modules or _is_module(first, scope)
    return False


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _guarded(name: str, scope: _Scope) -> str | None:
    """The read-only path a local name is protected for, or None."""
    return scope.names.get(name)


def _node_violations(node: ast.AST, scope: _Scope, readonly: dict[str, str]) -> Iterable[tuple[int, str]]:
    line = getattr(node, "lineno", 0)
    for name, verb in _bindings(node, scope):
        ro = _guarded(name, scope)
        if ro:
            yield line, f"{verb} {name} (imported from {ro})"
        elif name in scope.aliases and id(node) not in scope.module_bindings:
            yield line, f"{verb} {name} (a read-only module)"
    if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
        target = _patched_target(node, scope)
        if target:
            yield line, f"{'deletes' if isinstance(node.ctx, ast.Del) else 'monkeypatches'} {target}"
    if isinstance(node, ast.Call):
        yield from ((line, what) for what in _call_violations(node, scope, readonly))


def _bindings(node: ast.AST, scope: _Scope) -> Iterable[tuple[str, str]]:
    """(name, verb) for every name this node binds or unbinds."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        yield node.id, "rebinds"
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Del):
        yield node.id, "deletes"
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name, "shadows"
    elif isinstance(node, ast.arg):
        yield node.arg, "shadows"
    elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
        yield node.name, "rebinds"
    elif isinstance(node, ast.Global | ast.Nonlocal):
        yield from ((name, "declares global") for name in node.names)
    elif isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name not in scope.modules:
                yield alias.asname or alias.name.split(".")[0], "re-imports"
    elif isinstance(node, ast.ImportFrom):
        ro = scope.modules.get(node.module or "")
        for alias in node.names:
            local = alias.asname or alias.name
            same = ro is not None and scope.origins.get(local) == f"{ro}:{alias.name}"
            module = f"{node.module}.{alias.name}" in scope.modules or alias.name in scope.modules
            if alias.name != "*" and not same and not module:
                yield local, "re-imports"


def _patched_target(node: ast.Attribute | ast.Subscript, scope: _Scope) -> str | None:
    """What an attribute or item assignment changes, when that is a read-only module or a protected name."""
    base = node.value
    if isinstance(node, ast.Attribute) and _is_module(base, scope):
        if scope.protected is None or node.attr in scope.protected:
            return f"{_module_of(base, scope)}.{node.attr}"
        return None
    if isinstance(node, ast.Subscript) and _is_namespace(base, scope):
        key = node.slice
        if not isinstance(key, ast.Constant) or _guarded(str(key.value), scope) or _module_dict(base, scope):
            return f"a namespace entry ({ast.unparse(node)})"
        return None
    root = base
    while isinstance(root, ast.Attribute | ast.Subscript):
        root = root.value
    if isinstance(root, ast.Name) and (_guarded(root.id, scope) or root.id in scope.aliases):
        return f"{ast.unparse(node)} (imported from a read-only file)"
    if _is_module(root, scope):
        return f"{ast.unparse(node)}"
    return None


def _module_of(node: ast.AST, scope: _Scope) -> str:
    return node.id if isinstance(node, ast.Name) else ast.unparse(node)


def _is_namespace(node: ast.AST, scope: _Scope) -> bool:
    """globals(), locals(), vars(...), x.__dict__: a dict whose writes rebind names."""
    if isinstance(node, ast.Call) and _call_name(node) in NAMESPACES:
        return True
    return isinstance(node, ast.Attribute) and node.attr == "__dict__"


def _module_dict(node: ast.AST, scope: _Scope) -> bool:
    if isinstance(node, ast.Attribute):
        return _is_module(node.value, scope)
    return isinstance(node, ast.Call) and any(_is_module(arg, scope) for arg in node.args)


def _call_violations(node: ast.Call, scope: _Scope, readonly: dict[str, str]) -> Iterable[str]:
    name = _call_name(node)
    func = node.func
    if name in {"setattr", "delattr"} and isinstance(func, ast.Name) and node.args:
        target, key = node.args[0], node.args[1] if len(node.args) > 1 else None
        computed = not (isinstance(key, ast.Constant) and isinstance(key.value, str))
        if _is_module(target, scope) or (isinstance(target, ast.Name) and _guarded(target.id, scope)):
            yield f"{name} on {ast.unparse(target)}"
        elif _is_namespace(target, scope) or (not computed and _guarded(str(key.value), scope)):
            yield f"{name} of {ast.unparse(key) if key else '?'}"
    if isinstance(func, ast.Attribute) and func.attr in DICT_WRITERS and _is_namespace(func.value, scope):
        yield f"writes the namespace with {ast.unparse(func)}()"
    if name in DYNAMIC_CODE and isinstance(func, ast.Name):
        yield from _dynamic_code(node, scope, readonly)
    if name in DYNAMIC_IMPORT - {"reload"} and node.args and not isinstance(node.args[0], ast.Constant):
        yield f"imports a computed module name ({ast.unparse(node)})"
    if _writes_file(node, scope, readonly):
        yield f"writes a read-only file ({ast.unparse(node)[:80]})"


def _dynamic_code(node: ast.Call, scope: _Scope, readonly: dict[str, str]) -> Iterable[str]:
    """exec/eval/compile: a string literal is checked like the file; anything else cannot be checked."""
    code = node.args[0] if node.args else None
    if not (isinstance(code, ast.Constant) and isinstance(code.value, str)):
        yield f"runs code the guard cannot read ({_call_name(node)} of a computed value)"
        return
    try:
        inner = ast.parse(code.value)
    except (SyntaxError, ValueError):
        return
    for sub in ast.walk(inner):
        for _, what in _node_violations(sub, scope, readonly):
            yield f"{_call_name(node)} of code that {what}"


def _writes_file(node: ast.Call, scope: _Scope, readonly: dict[str, str]) -> bool:
    func, name = node.func, _call_name(node)
    on_path = isinstance(func, ast.Attribute) and _names_file(func.value, scope, readonly)  # Path(..).write_text()
    in_args = any(_names_file(arg, scope, readonly) for arg in [*node.args, *(k.value for k in node.keywords)])
    if name == "open" and (on_path or in_args):
        modes = [k.value for k in node.keywords if k.arg in {"mode", "flags"}] + node.args[1 - on_path :][:1]
        return any(not isinstance(m, ast.Constant) or not isinstance(m.value, str) or set(m.value) & WRITE_MODES for m in modes)
    if name not in FILE_WRITERS:
        return False
    on_module = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in {"os", "shutil"}
    return on_path or (in_args and (on_module or isinstance(func, ast.Name)))
