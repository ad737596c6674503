"""extract: the last metric lines of run.log, FAIL, a sanitized 50-line tail, in bounded memory."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autoresearch.metrics import TAIL_LINES, extract, sanitize

SUMMARY = textwrap.dedent(
    """\
    ---
    val_bpb:          0.997900
    training_seconds: 300.1
    total_seconds:    325.9
    peak_vram_mb:     45060.2
    mfu_percent:      39.80
    total_tokens_M:   499.6
    num_steps:        953
    num_params_M:     50.3
    depth:            8
    """
)

TRAINING = "".join(f"step {n:05d} ({n / 9.53:.1f}%) | loss: {3.0 - n / 1000:.6f} | lrm: 1.00\n" for n in range(1, 954))
SOME_TRAINING = "".join(TRAINING.splitlines(keepends=True)[:10])  # whole lines


def log(tmp_path: Path, text: str | bytes, name: str = "run.log") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def test_karpathys_summary_block(tmp_path: Path):
    metrics = extract(log(tmp_path, TRAINING + SUMMARY), "val_bpb", "peak_vram_mb")
    assert metrics.value == 0.9979
    assert metrics.memory_mb == 45060.2
    assert metrics.failed is False


def test_the_last_metric_and_memory_lines_win(tmp_path: Path):
    text = (
        "val_bpb:          1.250000\npeak_vram_mb:     1000.0\n"
        + TRAINING
        + SUMMARY
        + "peak_vram_mb:     46000.5\n"
        + SOME_TRAINING
    )
    metrics = extract(log(tmp_path, text), "val_bpb", "peak_vram_mb")
    assert metrics.value == 0.9979
    assert metrics.memory_mb == 46000.5


def test_metric_names_match_exactly(tmp_path: Path):
    text = "val_bpb_ema:      0.500000\nmy_val_bpb:       0.400000\nval_bpb:          0.997900\nval_bpbx: 0.1\n"
    metrics = extract(log(tmp_path, text), "val_bpb", "peak_vram_mb")
    assert metrics.value == 0.9979
    assert metrics.memory_mb is None


def test_other_metric_names(tmp_path: Path):
    text = "accuracy: 0.875\nmem_mb: 12.5\n"
    metrics = extract(log(tmp_path, text), "accuracy", "mem_mb")
    assert (metrics.value, metrics.memory_mb) == (0.875, 12.5)


def test_crlf_and_trailing_spaces(tmp_path: Path):
    metrics = extract(log(tmp_path, "val_bpb:    0.991000   \r\npeak_vram_mb: 10.0\r\n"), "val_bpb", "peak_vram_mb")
    assert (metrics.value, metrics.memory_mb) == (0.991, 10.0)


def test_last_line_without_newline(tmp_path: Path):
    metrics = extract(log(tmp_path, TRAINING + SUMMARY.rstrip("\n")), "val_bpb", "peak_vram_mb")
    assert metrics.value == 0.9979


def test_fail_line(tmp_path: Path):
    metrics = extract(log(tmp_path, SOME_TRAINING + "FAIL\n"), "val_bpb", "peak_vram_mb")
    assert metrics.failed is True
    assert metrics.value is None


def test_fail_with_a_metric_is_still_failed(tmp_path: Path):
    metrics = extract(log(tmp_path, TRAINING + "FAIL\n" + SUMMARY), "val_bpb", "peak_vram_mb")
    assert metrics.failed is True
    assert metrics.value == 0.9979


@pytest.mark.parametrize("line", ["FAILED", "test FAIL", "FAIL: loss exploded", "no FAIL here", "fail"])
def test_only_a_line_that_is_exactly_fail_counts(tmp_path: Path, line: str):
    metrics = extract(log(tmp_path, SOME_TRAINING + line + "\n" + SUMMARY), "val_bpb", "peak_vram_mb")
    assert metrics.failed is False


@pytest.mark.parametrize("shown", ["nan", "NaN", "-nan"])
def test_nan_value(tmp_path: Path, shown: str):
    metrics = extract(log(tmp_path, SUMMARY.replace("0.997900", shown)), "val_bpb", "peak_vram_mb")
    assert metrics.value is not None and math.isnan(metrics.value)


def test_inf_value(tmp_path: Path):
    metrics = extract(log(tmp_path, SUMMARY.replace("0.997900", "inf")), "val_bpb", "peak_vram_mb")
    assert metrics.value == math.inf


def test_unparseable_value_is_not_a_usable_number(tmp_path: Path):
    metrics = extract(log(tmp_path, SUMMARY.replace("0.997900", "oops")), "val_bpb", "peak_vram_mb")
    assert metrics.value is not None and math.isnan(metrics.value)


def test_missing_metric(tmp_path: Path):
    text = TRAINING + SUMMARY.replace("val_bpb:          0.997900\n", "")
    metrics = extract(log(tmp_path, text), "val_bpb", "peak_vram_mb")
    assert metrics.value is None
    assert metrics.memory_mb == 45060.2
    assert metrics.failed is False


def test_empty_log(tmp_path: Path):
    metrics = extract(log(tmp_path, ""), "val_bpb", "peak_vram_mb")
    assert metrics.value is None and metrics.memory_mb is None and metrics.failed is False


def test_missing_file(tmp_path: Path):
    metrics = extract(tmp_path / "no-such-run.log", "val_bpb", "peak_vram_mb")
    assert metrics.value is None and metrics.memory_mb is None and metrics.failed is False
    assert metrics.tail  # says that there was no log


# --- the tail ----------------------------------------------------------------------------------------


def test_tail_holds_the_last_50_lines(tmp_path: Path):
    text = "".join(f"line {n}\n" for n in range(1, 121))
    tail = extract(log(tmp_path, text), "val_bpb", "peak_vram_mb").tail
    lines = tail.split("\n")
    assert TAIL_LINES == 50
    assert len(lines) == 50
    assert lines == [f"line {n}" for n in range(71, 121)]


def test_short_log_tail_is_the_whole_log(tmp_path: Path):
    tail = extract(log(tmp_path, "a\nb\nc\n"), "val_bpb", "peak_vram_mb").tail
    assert tail == "a\nb\nc"


def test_tail_is_sanitized(tmp_path: Path):
    text = (
        "\x1b[31mTraceback (most recent call last):\x1b[0m\n"
        "progress 10%\rprogress 20%\rprogress 30%\n"
        "bell\x07 nul\x00 esc\x1b backspace\x08 del\x7f c1\x9b\n"
        "keeps\ttabs\n"
        "\x1b[1;32mRuntimeError: CUDA out of memory\x1b[K\n"
        "\x1b[?25h\x1b[2Jcleared\n"
    )
    tail = extract(log(tmp_path, text), "val_bpb", "peak_vram_mb").tail
    assert "\x1b" not in tail and "[31m" not in tail and "[0m" not in tail and "[K" not in tail
    assert all(ch in "\n\t" or (ord(ch) >= 0x20 and not 0x7F <= ord(ch) <= 0x9F) for ch in tail), repr(tail)
    assert "Traceback (most recent call last):" in tail
    assert "RuntimeError: CUDA out of memory" in tail
    assert "keeps\ttabs" in tail
    assert "cleared" in tail
    assert len(tail.split("\n")) == 6


def test_tail_with_invalid_utf8_does_not_fail(tmp_path: Path):
    metrics = extract(log(tmp_path, b"\xff\xfe broken bytes\n" + SUMMARY.encode()), "val_bpb", "peak_vram_mb")
    assert metrics.value == 0.9979
    assert "broken bytes" in metrics.tail


def test_sanitize():
    assert sanitize("\x1b[31mred\x1b[0m plain") == "red plain"
    assert sanitize("a\tb\nc") == "a\tb\nc"
    assert sanitize("a\x00b\x07c\x1bd\x7fe\x85f\rg") == "abcdefg"
    assert sanitize("ünïcödé → ok") == "ünïcödé → ok"


# --- bounded memory ----------------------------------------------------------------------------------

MEASURE = textwrap.dedent(
    """\
    import resource, sys
    from pathlib import Path
    from autoresearch.metrics import extract
    metrics = extract(Path(sys.argv[1]), "val_bpb", "peak_vram_mb")
    print(metrics.value, metrics.memory_mb, metrics.failed, len(metrics.tail), len(metrics.tail.splitlines()))
    # VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's high-water mark across exec.
    print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))  # KiB
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units are Linux's")
def test_memory_stays_bounded_on_a_huge_log(tmp_path: Path):
    path = tmp_path / "run.log"
    line = (b"step 00001 (0.1%) | loss: 3.141592 | lrm: 1.00 | dt: 123ms | tok/sec: 1,000,000 | " + b"x" * 900)[:999] + b"\n"
    block = line * 4096  # 4 MiB
    try:
        with open(path, "wb") as handle:
            for _ in range(19):  # ~76 MiB of lines
                handle.write(block)
            handle.write(b"val_bpb:          1.500000\n")  # an early value that must be superseded
            chunk = b"y" * (1 << 20)
            for _ in range(50):  # one 50 MiB line without a newline
                handle.write(chunk)
            handle.write(b"\n")
            for _ in range(19):  # ~76 MiB more
                handle.write(block)
            handle.write(SUMMARY.encode())
        size = path.stat().st_size
        assert size > 195 * 1024 * 1024
        result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        found, rss = result.stdout.splitlines()
        value, memory, failed, tail_chars, tail_lines = found.split()
        assert (float(value), float(memory), failed) == (0.9979, 45060.2, "False")
        assert int(tail_lines) <= 50
        assert int(tail_chars) < 100_000
        peak_mb = int(rss) / 1024
        assert peak_mb < 150, f"extract peaked at {peak_mb:.0f} MB on a {size / 2**20:.0f} MB log"
    finally:
        path.unlink(missing_ok=True)
