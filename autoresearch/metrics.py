"""Read the summary lines of a training log without loading the log: memory stays bounded."""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from autoresearch.models import Metrics

TAIL_LINES = 50
MAX_LINE_BYTES = 64 * 1024  # a longer "line" is read in pieces
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def sanitize(text: str) -> str:
    """Strip ANSI sequences and control characters (keeps newlines and tabs)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def _lines(path: Path, block: int = 1 << 20) -> Iterator[bytes]:
    """The file's lines; a line longer than MAX_LINE_BYTES is cut to its first MAX_LINE_BYTES."""
    carry = b""
    with open(path, "rb") as handle:
        while data := handle.read(block):
            *complete, rest = (carry + data).split(b"\n")
            yield from (line[:MAX_LINE_BYTES] for line in complete)
            carry = rest[:MAX_LINE_BYTES]
    if carry:
        yield carry


def extract(log_path: Path, metric: str, memory_metric: str, tail_lines: int = TAIL_LINES) -> Metrics:
    """The last `metric:` and `memory_metric:` values, whether a `FAIL` line appeared, and the log's tail."""
    pattern = re.compile(rf"^\s*({re.escape(metric)}|{re.escape(memory_metric)}):\s+(\S+)\s*$")
    found: dict[str, float] = {}
    failed = False
    tail: deque[str] = deque(maxlen=tail_lines)
    if not log_path.exists():
        return Metrics(tail="(no run.log was written)")
    for raw in _lines(log_path):
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        tail.append(line[:1000])
        if line.strip() == "FAIL":
            failed = True
        match = pattern.match(line)
        if match:
            try:
                found[match[1]] = float(match[2])
            except ValueError:
                found[match[1]] = math.nan
    return Metrics(
        value=found.get(metric),
        memory_mb=found.get(memory_metric),
        failed=failed,
        tail=sanitize("\n".join(tail)),
    )
