"""An LLM stand-in for the benchmarks: mutate's idea, handed over after SLOW_PROPOSER_SECONDS (default 20).

Bench-only (the product ships no toy proposer): registers itself as `slow` in the proposer registry,
then runs the real CLI in this process, e.g.
    python bench/slow_proposer.py run --repo R --proposer slow --iterations 3
"""

from __future__ import annotations

import os
import time

from autoresearch.models import Proposal, ProposalContext
from autoresearch.proposers import register
from autoresearch.proposers.mutate import MutateProposer


@register
class SlowProposer(MutateProposer):
    name = "slow"

    def propose(self, context: ProposalContext) -> Proposal:
        time.sleep(float(os.environ.get("SLOW_PROPOSER_SECONDS", "20")))
        return super().propose(context)


if __name__ == "__main__":
    from autoresearch.cli import main

    main()
