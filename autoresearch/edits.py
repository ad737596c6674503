"""Apply a proposal's search/replace edits to the editable files, in memory, and check the result."""

from __future__ import annotations

from pydantic import BaseModel

from autoresearch.models import FileEdit


class EditResult(BaseModel):
    """The editable files after the edit (only those that changed), or why the edit was refused."""

    files: dict[str, str] = {}
    refused: str | None = None


def apply_edits(originals: dict[str, str], edits: list[FileEdit]) -> EditResult:
    """`originals` holds every editable file. An edit to any other path is refused, never applied."""
    current = dict(originals)
    for edit in edits:
        if edit.path not in originals:
            allowed = ", ".join(sorted(originals))
            return EditResult(
                files=_changed(originals, current), refused=f"edit touches {edit.path}, which is not editable ({allowed})"
            )
        count = current[edit.path].count(edit.search) if edit.search else 0
        if count != 1:
            problem = "was not found" if count == 0 else f"matches {count} places"
            return EditResult(files=_changed(originals, current), refused=f"the search text {problem} in {edit.path}")
        current[edit.path] = current[edit.path].replace(edit.search, edit.replace, 1)
    changed = _changed(originals, current)
    if not changed:
        return EditResult(refused="the edit changes nothing")
    for path, source in changed.items():
        if path.endswith(".py"):
            try:
                compile(source, path, "exec")
            except (SyntaxError, ValueError) as exc:
                where = f"line {exc.lineno}: " if getattr(exc, "lineno", None) else ""
                return EditResult(files=changed, refused=f"{path} does not compile: {where}{getattr(exc, 'msg', exc)}")
    return EditResult(files=changed)


def _changed(originals: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    return {path: text for path, text in current.items() if text != originals[path]}
