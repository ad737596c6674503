"""The bench experiment's train.py: sleeps FAKE_TRAIN_SECONDS, then prints karpathy's summary block.

The metric moves with the constants below, so the loop sees keeps and discards and the mutate proposer
never runs out of ideas: each step up of SCALE's exponent (2**k -> 2**(k+1)) lowers val_bpb by 0.01 (a
keep), and the whole file's sha256 adds deterministic noise below 0.004 (other edits keep or discard
by chance). Standard library only: it starts in ~20 ms.
"""

import hashlib
import math
import os
import time

SCALE = 2**10  # the one edit that always helps
LEARNING_RATE = 0.04
WEIGHT_DECAY = 0.1
WARMUP_RATIO = 0.05
DEPTH = 4
N_HEAD = 4
BATCH_SIZE = 32
SEED = 0  # bench/bash_loop.sh changes this one

started = time.monotonic()
time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0")))
training_seconds = time.monotonic() - started
with open(__file__, "rb") as handle:
    noise = int.from_bytes(hashlib.sha256(handle.read()).digest()[:8], "big") / 2**64
val_bpb = 20.0 - 0.01 * math.log2(SCALE) + 0.004 * noise
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {training_seconds:.3f}")
print(f"peak_vram_mb:     {1024.0 * DEPTH:.1f}")
