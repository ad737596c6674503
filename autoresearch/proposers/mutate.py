"""The offline proposer: nudge one UPPER_CASE numeric constant of an editable file by one step.

No network, no API key, seeded and reproducible. It finds module-level `NAME = <number>` assignments
(ints, floats, negatives, `2**k`), picks one constant at random among those with untried steps, and
proposes its nearest step not yet tried from the current baseline. The edit replaces only the
literal's characters in that one line, so formatting and comments survive.

Step table (rank 0 is tried first; both directions of a rank are equally near, one is picked at random):

    kind              steps, nearest first                      bounds
    float != 0        x1.5 /1.5, x2 /2, x3 /3                   keeps its sign; names with RATIO, FRAC,
    float == 0        +0.05, +0.1, +0.2                         DROPOUT, BETA, MOMENTUM stay in [0, 1)
    int, |v| < 16     +1 -1, +2 -2                              >= 1 if it was >= 1, >= 0 if it was 0,
    int, |v| >= 16    x2 /2, x4 /4                              < 0 if it was < 0
    2**k              exponent +1 -1, +2 -2                     exponent >= 0

New floats are rounded to 4 significant digits and written like the old literal (scientific stays
scientific). Widen the table below to give the loop more room before ProposerExhausted.

`search_range` turns the same table into an absolute box per constant (SPAN_STEPS widest steps either
side of its start, the same bounds) for optimizers that search one, such as the optuna proposer.
"""

from __future__ import annotations

import ast
import io
import math
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from autoresearch.models import FileEdit, LedgerRow, Proposal, ProposalContext
from autoresearch.proposers.base import Proposer, ProposerExhausted

# --- the step table -------------------------------------------------------------------------------
FLOAT_FACTORS: tuple[float, ...] = (1.5, 2.0, 3.0)  # multiply and divide
ZERO_FLOAT_STEPS: tuple[float, ...] = (0.05, 0.1, 0.2)  # added to a float that is 0.0
SMALL_INT_LIMIT = 16  # ints with |v| below this take additive steps, larger ones multiplicative
SMALL_INT_STEPS: tuple[int, ...] = (1, 2)  # added and subtracted
LARGE_INT_FACTORS: tuple[int, ...] = (2, 4)  # multiply and divide (keeps powers of two powers of two)
EXPONENT_STEPS: tuple[int, ...] = (1, 2)  # added to and subtracted from k in 2**k
UNIT_INTERVAL_WORDS: tuple[str, ...] = ("RATIO", "FRAC", "DROPOUT", "BETA", "MOMENTUM")  # floats stay in [0, 1)
SIGNIFICANT_DIGITS = 4
SPAN_STEPS = 2  # search_range: an optimizer's box reaches this many widest steps either side of the start value
UNIT_INTERVAL_MAX = 0.99  # search_range: the top of the box for the RATIO, FRAC, ... floats
# --------------------------------------------------------------------------------------------------

CONSTANT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
DESCRIPTION = re.compile(r"^([A-Z][A-Z0-9_]*) (.+?) -> (.+)$")
MAX_EXPONENT = 1024  # refuse to evaluate absurd powers read back from the ledger

Number = int | float
Kind = Literal["int", "float", "power"]


@dataclass(frozen=True)
class Constant:
    """One mutable module-level constant and where its literal sits."""

    path: str
    name: str
    kind: Kind
    value: Number
    text: str  # the value expression exactly as in the source: "0.04", "-3e-4", "2 ** 19"
    line: str  # the whole source line, with its line ending
    start: int  # character offsets of `text` within `line`
    end: int


@dataclass(frozen=True)
class Candidate:
    value: Number
    text: str  # replaces Constant.text
    rank: int  # index in the step table: lower is nearer
    step: str  # "x1.5", "-1", "k+1", ...


# --- finding constants -----------------------------------------------------------------------------


def evaluate(node: ast.expr) -> tuple[Kind, Number] | None:
    """The kind and value of a number literal, a signed one, or an int power `b**k`; None otherwise."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return ("int" if type(node.value) is int else "float"), node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = node.operand
        if isinstance(inner, ast.Constant) and type(inner.value) in (int, float):
            kind: Kind = "int" if type(inner.value) is int else "float"
            return kind, -inner.value if isinstance(node.op, ast.USub) else inner.value
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base, exponent = node.left, node.right
        if all(isinstance(n, ast.Constant) and type(n.value) is int for n in (base, exponent)):
            if base.value >= 2 and 0 <= exponent.value <= MAX_EXPONENT:
                return "power", base.value**exponent.value
    return None


def evaluate_text(text: str) -> Number | None:
    """The value of a literal written as text (as in a ledger description), or None."""
    try:
        found = evaluate(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError):
        return None
    return found[1] if found else None


def _module_bindings(tree: ast.Module) -> Counter[str]:
    """How often each name is bound in module scope (function and class bodies excluded)."""
    counts: Counter[str] = Counter()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                counts[child.name] += 1
                continue
            if isinstance(child, ast.Lambda):
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                counts[child.id] += 1
            elif isinstance(child, ast.alias):
                counts[(child.asname or child.name).split(".")[0]] += 1
            visit(child)

    visit(tree)
    for node in ast.walk(tree):  # a function that declares `global NAME` may rebind it
        if isinstance(node, ast.Global):
            counts.update(node.names)
    return counts


def _char_offset(line: str, byte_offset: int) -> int:
    """ast column offsets count UTF-8 bytes; slicing needs characters."""
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


def find_constants(path: str, source: str) -> list[Constant]:
    """The UPPER_CASE numeric constants assigned exactly once at the top level of one file, in order."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = io.StringIO(source, newline="").readlines()
    bindings = _module_bindings(tree)
    found = []
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None and statement.simple:
            target, value = statement.target, statement.value
        else:
            continue
        if not (isinstance(target, ast.Name) and CONSTANT_NAME.match(target.id) and bindings[target.id] == 1):
            continue
        evaluated = evaluate(value)
        if evaluated is None or value.lineno != value.end_lineno or value.end_col_offset is None:
            continue
        line = lines[value.lineno - 1]
        if source.count(line) != 1:  # the edit's search text must be unique
            continue
        start, end = _char_offset(line, value.col_offset), _char_offset(line, value.end_col_offset)
        kind, number = evaluated
        found.append(Constant(path, target.id, kind, number, line[start:end], line, start, end))
    return found


def find_all_constants(files: dict[str, str]) -> list[Constant]:
    """Constants of every editable file; a name defined in more than one file is ambiguous and skipped."""
    constants = [c for path, source in files.items() for c in find_constants(path, source)]
    names = Counter(c.name for c in constants)
    return [c for c in constants if names[c.name] == 1]


# --- candidate values ------------------------------------------------------------------------------


def format_float(value: float, like: str) -> str:
    """`value` rounded to a few significant digits, written in the style of the literal `like`."""
    value = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if "e" not in like.lower():
        return repr(value)
    marker = "E" if "E" in like else "e"
    old_exponent = like.lower().rsplit("e", 1)[1]
    digits = old_exponent.lstrip("+-")
    width = len(digits) if digits.startswith("0") else 1  # 3e-04 keeps two digits, 3e-4 keeps one
    mantissa, exponent = f"{value:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = int(exponent)
    sign = "-" if power < 0 else ("+" if old_exponent.startswith("+") else "")
    return f"{mantissa}{marker}{sign}{abs(power):0{width}d}"


def _unit_interval(name: str) -> bool:
    return any(word in name for word in UNIT_INTERVAL_WORDS)


def _float_steps(constant: Constant) -> Iterable[tuple[float, int, str]]:
    old = float(constant.value)
    if old == 0.0:
        for rank, step in enumerate(ZERO_FLOAT_STEPS):
            yield step, rank, f"+{step:g}"
        return
    for rank, factor in enumerate(FLOAT_FACTORS):
        yield old * factor, rank, f"x{factor:g}"
        yield old / factor, rank, f"/{factor:g}"


def _int_steps(constant: Constant) -> Iterable[tuple[int, int, str]]:
    old = int(constant.value)
    if abs(old) < SMALL_INT_LIMIT:
        for rank, step in enumerate(SMALL_INT_STEPS):
            yield old + step, rank, f"+{step}"
            yield old - step, rank, f"-{step}"
    else:
        for rank, factor in enumerate(LARGE_INT_FACTORS):
            yield old * factor, rank, f"x{factor}"
            yield int(round(old / factor)), rank, f"/{factor}"


def power_parts(text: str) -> tuple[str, int, int]:
    """`2 ** 19` -> ("2 ** ", 2, 19): the text before the exponent (spacing kept), the base and the exponent."""
    tree = ast.parse(text, mode="eval").body
    assert isinstance(tree, ast.BinOp) and isinstance(tree.left, ast.Constant) and isinstance(tree.right, ast.Constant)
    return text[: tree.right.col_offset], tree.left.value, tree.right.value


def _power_steps(constant: Constant) -> Iterable[tuple[str, int, str]]:
    prefix, _, exponent = power_parts(constant.text)
    for rank, step in enumerate(EXPONENT_STEPS):
        for new, label in ((exponent + step, f"k+{step}"), (exponent - step, f"k-{step}")):
            if new >= 0:
                yield prefix + str(new), rank, label


def _in_bounds(constant: Constant, value: Number) -> bool:
    old = constant.value
    if constant.kind == "float" and _unit_interval(constant.name) and 0.0 <= old < 1.0 and not 0.0 <= value < 1.0:
        return False
    if old >= 1 and constant.kind == "int":
        return value >= 1
    if old > 0:
        return value > 0
    if old < 0:
        return value < 0
    return value >= 0


def candidates(constant: Constant) -> list[Candidate]:
    """Every value the step table allows for one constant, nearest first, without the current value."""
    raw: list[tuple[str, int, str]] = []
    if constant.kind == "float":
        raw = [(format_float(v, constant.text), rank, step) for v, rank, step in _float_steps(constant)]
    elif constant.kind == "int":
        raw = [(str(v), rank, step) for v, rank, step in _int_steps(constant)]
    else:
        raw = list(_power_steps(constant))
    result: list[Candidate] = []
    seen = {constant.value}
    for text, rank, step in sorted(raw, key=lambda item: item[1]):
        value = evaluate_text(text)
        if value is None or value in seen or not _in_bounds(constant, value):
            continue
        seen.add(value)
        result.append(Candidate(value, text, rank, step))
    return result


# --- absolute ranges, for optimizers that search a box (the optuna proposer) -------------------------


@dataclass(frozen=True)
class SearchRange:
    """Where an optimizer may put one constant: SPAN_STEPS of the table's widest step either side of its start.

    The parameter is the value itself, except for `2**k` constants, where it is the exponent k.
    Positive floats and ints >= SMALL_INT_LIMIT are searched on a log scale (rates and sizes).
    """

    low: Number
    high: Number
    integer: bool
    log: bool


def search_range(constant: Constant) -> SearchRange:
    """The box around a constant's start value, inside the same bounds as the step table (sign, [0, 1), >= 1)."""
    value = constant.value
    if constant.kind == "power":
        exponent, reach = power_parts(constant.text)[2], SPAN_STEPS * EXPONENT_STEPS[-1]
        return SearchRange(max(0, exponent - reach), exponent + reach, True, False)
    if constant.kind == "int":
        if abs(value) < SMALL_INT_LIMIT:
            low, high = value - SPAN_STEPS * SMALL_INT_STEPS[-1], value + SPAN_STEPS * SMALL_INT_STEPS[-1]
            floor = 1 if value >= 1 else 0 if value == 0 else low
            return SearchRange(max(low, floor), min(high, -1) if value < 0 else high, True, False)
        span = LARGE_INT_FACTORS[-1] ** SPAN_STEPS
        low, high = sorted((int(value / span), value * span))
        return SearchRange(low, high, True, value > 0)
    if value == 0.0:
        return SearchRange(0.0, min(SPAN_STEPS * ZERO_FLOAT_STEPS[-1], UNIT_INTERVAL_MAX), False, False)
    span = FLOAT_FACTORS[-1] ** SPAN_STEPS
    low, high = sorted((value / span, value * span))
    if _unit_interval(constant.name) and 0.0 < value < 1.0:
        high = min(high, UNIT_INTERVAL_MAX)
    return SearchRange(low, high, False, value > 0)


def parameter(constant: Constant, value: Number) -> Number:
    """A constant's value as its SearchRange parameter (the exponent of a `b**k` constant)."""
    if constant.kind != "power":
        return value
    base = power_parts(constant.text)[1]
    return round(math.log(value, base))


def literal(constant: Constant, param: Number) -> str:
    """The source text for a parameter value, written like the constant's current literal."""
    if constant.kind == "power":
        return power_parts(constant.text)[0] + str(int(param))
    if constant.kind == "int":
        return str(int(param))
    return format_float(float(param), constant.text)


# --- what was tried --------------------------------------------------------------------------------


def tried_from_baseline(history: list[LedgerRow]) -> set[tuple[str, Number]]:
    """(NAME, new value) pairs in the rows after the most recent keep: those ran from this baseline."""
    last_keep = max((i for i, row in enumerate(history) if row.status == "keep"), default=-1)
    tried: set[tuple[str, Number]] = set()
    for row in history[last_keep + 1 :]:
        match = DESCRIPTION.match(row.description.strip())
        if not match:
            continue
        new = match.group(3)
        value = evaluate_text(new)
        if value is None and new.split():
            value = evaluate_text(new.split()[0])  # "NAME 1 -> 2 (some note)"
        if value is not None:
            tried.add((match.group(1), value))
    return tried


# --- the proposer ----------------------------------------------------------------------------------


def choose(context: ProposalContext) -> tuple[Constant, Candidate, int]:
    """The constant and step to try next, and how many untried candidates remain in all (before this one)."""
    constants = find_all_constants(context.editable_files)
    if not constants:
        files = ", ".join(sorted(context.editable_files)) or "(no editable files)"
        raise ProposerExhausted(
            f"mutate found no UPPER_CASE numeric constants (NAME = 0.1, NAME = 64, NAME = 2**19) at the top "
            f"level of {files}; add some, or use another proposer"
        )
    tried = tried_from_baseline(context.history)
    open_steps = {c: [cand for cand in candidates(c) if (c.name, cand.value) not in tried] for c in constants}
    open_steps = {c: steps for c, steps in open_steps.items() if steps}
    if not open_steps:
        total = sum(len(candidates(c)) for c in constants)
        raise ProposerExhausted(
            f"mutate has tried all {total} steps of its table for the {len(constants)} constants "
            f"({', '.join(c.name for c in constants)}) from baseline {context.baseline_commit[:12]}; "
            "use another proposer, or widen the step table in autoresearch/proposers/mutate.py"
        )
    rng = random.Random(f"{context.seed}:{context.baseline_commit}:{context.iteration}")
    constant = rng.choice(list(open_steps))
    nearest = min(c.rank for c in open_steps[constant])
    candidate = rng.choice([c for c in open_steps[constant] if c.rank == nearest])
    return constant, candidate, sum(len(steps) for steps in open_steps.values())


class MutateProposer(Proposer):
    """Offline, seeded: change one numeric constant by its nearest untried step."""

    name = "mutate"

    def propose(self, context: ProposalContext) -> Proposal:
        constant, candidate, remaining = choose(context)
        new_line = constant.line[: constant.start] + candidate.text + constant.line[constant.end :]
        return Proposal(
            description=f"{constant.name} {constant.text} -> {candidate.text}",
            rationale=(
                f"Step {candidate.step} on {constant.name} in {constant.path}: the nearest step not yet tried "
                f"from baseline {context.baseline_commit[:12]} ({remaining - 1} other untried steps remain)."
            ),
            edits=[FileEdit(path=constant.path, search=constant.line, replace=new_line)],
        )
