"""How big is the llm/agent prompt for the bundled tiny experiment with a full 50-row history, and how fast
is it built? Prints characters, a rough token estimate (chars / 4) and the build time. No network.

    python bench/prompt_size.py
"""

from __future__ import annotations

import time
from pathlib import Path

from autoresearch.models import CrashReport, LedgerRow, ProposalContext
from autoresearch.prompt import build_prompt, public_interface

TINY = Path(__file__).resolve().parents[1] / "experiments" / "tiny"


def main() -> None:
    rows = [
        LedgerRow(
            commit=f"{i:07x}",
            value=2.9 - i / 1000,
            memory_gb=0.4,
            status=("keep", "discard", "crash")[i % 3],
            description=f"MATRIX_LR 0.04 -> 0.06 variant {i}",
        )
        for i in range(80)
    ]
    context = ProposalContext(
        iteration=80,
        baseline_commit="0" * 40,
        editable_files={"train.py": (TINY / "train.py").read_text()},
        program=(TINY / "program.md").read_text(),
        history=rows,
        readonly_interfaces={"prepare.py": public_interface((TINY / "prepare.py").read_text())},
        reasons={row.commit: "worse by 0.012345" for row in rows},
    )
    crash = CrashReport(commit="1" * 40, description="idea", reason="exit code 1", log_tail="x" * 80 * 50 + "\n" * 49, attempt=1)
    for label, ctx in (("new idea", context), ("crash fix", context.model_copy(update={"crash": crash}))):
        started = time.perf_counter()
        prompt = build_prompt(ctx)
        elapsed = time.perf_counter() - started
        print(
            f"{label:9s}: rules {len(prompt.rules)} chars, body {len(prompt.body)} chars, "
            f"~{len(prompt.text) // 4} tokens, built in {elapsed * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
