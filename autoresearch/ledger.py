"""results.tsv: the protocol's ledger. One whole line per training run, appended with fsync.

Format (karpathy/autoresearch): header `commit\t<metric>\tmemory_gb\tstatus\tdescription`;
7-character commit, value with 6 decimals, memory in GB with 1 decimal, status keep|discard|crash.
"""

from __future__ import annotations

import os
from pathlib import Path

from autoresearch.errors import UserError
from autoresearch.models import LedgerRow

LEDGER_FILE = "results.tsv"
STATUSES = ("keep", "discard", "crash")


def header(metric: str) -> str:
    return f"commit\t{metric}\tmemory_gb\tstatus\tdescription"


def format_row(row: LedgerRow) -> str:
    return "\t".join([row.commit[:7], f"{row.value:.6f}", f"{row.memory_gb:.1f}", row.status, row.description])


def parse_row(line: str, where: str) -> LedgerRow:
    cells = line.split("\t")
    if len(cells) != 5:
        raise UserError(f"{where}: expected 5 tab-separated columns, found {len(cells)}; fix or move the file")
    commit, value, memory, status, description = cells
    if status not in STATUSES:
        raise UserError(f"{where}: status {status!r} is not one of keep, discard, crash; fix the line")
    try:
        return LedgerRow(commit=commit, value=float(value), memory_gb=float(memory), status=status, description=description)
    except ValueError:
        raise UserError(f"{where}: value and memory_gb must be numbers; fix the line") from None


def parse(text: str, metric: str | None = None, where: str = LEDGER_FILE) -> list[LedgerRow]:
    """Parse a whole ledger. With `metric`, the header must name it."""
    lines = text.splitlines()
    if not lines:
        raise UserError(f"{where} is empty; it needs at least the header line")
    columns = lines[0].split("\t")
    expected = header(metric).split("\t") if metric else None
    if (
        len(columns) != 5
        or columns[0] != "commit"
        or columns[2:] != ["memory_gb", "status", "description"]
        or (expected and columns != expected)
    ):
        want = header(metric or "<metric>").replace("\t", "\\t")
        raise UserError(f"{where}: the header must be {want!r}; fix the first line or move the file away")
    return [parse_row(line, f"{where} line {number}") for number, line in enumerate(lines[1:], 2) if line.strip()]


def read(path: Path, metric: str | None = None, torn_ok: bool = False) -> list[LedgerRow]:
    """All rows. With `torn_ok`, an unterminated last line (see `repair_torn_tail`) is ignored."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return parse(whole_lines(text) if torn_ok else text, metric, where=str(path))


def whole_lines(text: str) -> str:
    """`text` without an unterminated last line (kept if it is the only line)."""
    return text[: text.rindex("\n") + 1] if text and not text.endswith("\n") and "\n" in text else text


def create(path: Path, metric: str) -> None:
    """A new ledger with the header only (never overwrites one that exists)."""
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(header(metric) + "\n")
        _sync(handle)


def append(path: Path, row: LedgerRow) -> None:
    """Append one whole line, then flush and fsync: a crash leaves the row or nothing (or a torn tail)."""
    data = (format_row(row) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_torn_tail(path: Path, metric: str) -> str | None:
    """Make the file end with a whole line. Returns what was done, or None if nothing was needed.

    A torn last line (killed mid-append) is completed with a newline when it parses as a row (only
    the newline was lost) and otherwise moved, verbatim, to results.tsv.torn so nothing is lost.
    """
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    head, _, tail = data.rpartition(b"\n")
    try:
        text = tail.decode("utf-8")
    except UnicodeDecodeError:  # cut inside a character: certainly torn
        text = ""
    if not head:  # the header itself is torn
        if header(metric).startswith(text):
            _rewrite(path, (header(metric) + "\n").encode())
            return "completed a torn header"
        return None  # parse() reports the bad header
    try:
        parse_row(text, "torn line")
    except UserError:
        text = tail.decode("utf-8", errors="replace")
        with open(path.with_name(path.name + ".torn"), "ab") as handle:
            handle.write(tail + b"\n")
            _sync(handle)
        _rewrite(path, head + b"\n")
        return f"moved a torn last line to {path.name}.torn: {text!r}"
    with open(path, "ab") as handle:
        handle.write(b"\n")
        _sync(handle)
    return "completed the last line (its newline was missing)"


def _rewrite(path: Path, data: bytes) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        _sync(handle)
    os.replace(temp, path)


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def last_keep(rows: list[LedgerRow]) -> LedgerRow | None:
    return next((row for row in reversed(rows) if row.status == "keep"), None)
