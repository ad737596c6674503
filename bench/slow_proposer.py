"""An LLM stand-in for the benchmarks: mutate's idea, handed over after SLOW_PROPOSER_SECONDS (default 20).

Bench-only (the product ships no toy proposer): run as a script, it installs itself as `slow` in the
`autoresearch.proposers` entry-point group (a dist-info in a temporary directory on sys.path), then
runs the real CLI in this process, e.g.
    python bench/slow_proposer.py run --repo R --proposer slow --iterations 3
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from autoresearch.models import Proposal, ProposalContext
from autoresearch.proposers.mutate import MutateProposer


class SlowProposer(MutateProposer):
    name = "slow"

    def propose(self, context: ProposalContext) -> Proposal:
        time.sleep(float(os.environ.get("SLOW_PROPOSER_SECONDS", "20")))
        return super().propose(context)


def install(directory: Path) -> None:
    """`slow = slow_proposer:SlowProposer` as a real entry point, importable from this file's folder."""
    info = directory / "autoresearch_bench_slow-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: autoresearch-bench-slow\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[autoresearch.proposers]\nslow = slow_proposer:SlowProposer\n")
    sys.path[:0] = [str(directory), str(Path(__file__).resolve().parent)]


if __name__ == "__main__":
    from autoresearch.cli import main

    with tempfile.TemporaryDirectory(prefix="autoresearch-bench-") as plugins:
        install(Path(plugins))
        main()
