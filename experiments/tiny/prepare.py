"""
One-time data preparation for the tiny autoresearch experiment, plus the fixed
runtime utilities (dataloader, evaluation) that train.py imports.

No downloads: the corpus is the Python standard library's own source code
(or your own text files), read as raw bytes. Tokens are bytes, so there is no
tokenizer to train and bits per byte is simply the loss in bits.

Usage:
    python prepare.py                   # corpus = this Python's stdlib *.py files
    python prepare.py --text-dir DIR    # corpus = every file under DIR (recursively)
    python prepare.py --force           # rebuild even if already prepared

Data is stored in $AUTORESEARCH_CACHE or ~/.cache/autoresearch-tiny/.
This file is read-only for the research loop: it is the ground truth.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import sysconfig
import tempfile
import time

import torch

# ---------------------------------------------------------------------------
# Constants (fixed, do not modify)
# ---------------------------------------------------------------------------

MAX_SEQ_LEN = 256  # context length (bytes)
TIME_BUDGET = int(os.environ.get("AUTORESEARCH_TIME_BUDGET", "300"))  # training time budget in seconds
# On a CPU the time budget is paid in compute: TIME_BUDGET seconds at this reference rate, about one
# core of a recent x86 CPU in fp32 on this model. train.py turns it into a number of steps from the
# FLOPs of its first step, so a busy machine changes how long a run takes, never how far it gets.
CPU_FLOPS_PER_SECOND = 2.0e10
EVAL_TOKENS = 128 * 1024  # number of val bytes scored by evaluate_bpb (fixed slice)

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

CACHE_DIR = os.path.expanduser(os.environ.get("AUTORESEARCH_CACHE") or os.path.join("~", ".cache", "autoresearch-tiny"))
MAX_TRAIN_BYTES = 8 * 1024 * 1024  # cap on the training split
MAX_VAL_BYTES = 512 * 1024  # cap on the validation split
VAL_PERCENT = 5  # share of files (by a stable hash of their path) that go to val
SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
VOCAB_SIZE = 256  # one token per byte value
BOS_TOKEN = 0  # the NUL byte separates documents; it is stripped from the text itself

# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------


def list_stdlib_files():
    """Sorted relative paths of the standard library's *.py files (no tests, no site-packages)."""
    root = sysconfig.get_paths()["stdlib"]
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            if name.endswith(".py"):
                paths.append(os.path.relpath(os.path.join(dirpath, name), root))
    return root, sorted(p.replace(os.sep, "/") for p in paths)


def list_text_files(text_dir):
    """Sorted relative paths of every regular file under text_dir (hidden ones skipped)."""
    root = os.path.abspath(text_dir)
    if not os.path.isdir(root):
        raise SystemExit(f"--text-dir {text_dir}: not a directory")
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.isfile(os.path.join(dirpath, name)):
                paths.append(os.path.relpath(os.path.join(dirpath, name), root))
    return root, sorted(p.replace(os.sep, "/") for p in paths)


def is_val(relpath):
    """Stable split: sha1 of the relative path (never Python's salted hash())."""
    return int(hashlib.sha1(relpath.encode("utf-8")).hexdigest(), 16) % 100 < VAL_PERCENT


def build_splits(root, relpaths):
    """Concatenate documents, each preceded by BOS, into train and val byte strings (capped)."""
    train, val = bytearray(), bytearray()
    n_train = n_val = 0
    bos = bytes([BOS_TOKEN])
    for rel in relpaths:
        with open(os.path.join(root, rel), "rb") as f:
            doc = f.read().replace(bos, b"")
        if not doc:
            continue
        if is_val(rel):
            if len(val) < MAX_VAL_BYTES:
                val += bos + doc
                n_val += 1
        elif len(train) < MAX_TRAIN_BYTES:
            train += bos + doc
            n_train += 1
        if len(train) >= MAX_TRAIN_BYTES and len(val) >= MAX_VAL_BYTES:
            break
    train, val = bytes(train[:MAX_TRAIN_BYTES]), bytes(val[:MAX_VAL_BYTES])
    # A small corpus can hash all its files to one side: fall back to the last tenth of the bytes as val.
    min_val = 2 * (MAX_SEQ_LEN + 1)
    if len(val) < min_val or len(train) < 4 * min_val:
        stream = train + val
        cut = len(stream) - max(min_val, len(stream) // 10)
        train, val = stream[:cut], stream[cut:]
        n_train, n_val = n_train + n_val, 0
    return train, val, n_train, n_val


# ---------------------------------------------------------------------------
# Preparation (atomic: the cache dir is either absent or complete)
# ---------------------------------------------------------------------------


def is_prepared(cache_dir=CACHE_DIR):
    return all(os.path.isfile(os.path.join(cache_dir, name)) for name in ("train.bin", "val.bin", "meta.json"))


def read_meta(cache_dir=CACHE_DIR):
    with open(os.path.join(cache_dir, "meta.json")) as f:
        return json.load(f)


def prepare(text_dir=None, force=False, cache_dir=CACHE_DIR):
    t0 = time.time()
    if text_dir is None:
        root, relpaths = list_stdlib_files()
        source = f"stdlib:{root}"
    else:
        root, relpaths = list_text_files(text_dir)
        source = f"text-dir:{root}"

    if is_prepared(cache_dir) and not force:
        meta = read_meta(cache_dir)
        if meta.get("source") == source:
            print(f"Data: already prepared at {cache_dir} ({meta['train_bytes']:,} train / {meta['val_bytes']:,} val bytes)")
            return
        print(f"Data: {cache_dir} holds {meta.get('source')}; rebuilding from {source}")
    elif os.path.isdir(cache_dir) and os.listdir(cache_dir) and not force:
        raise SystemExit(f"{cache_dir} exists and is not a prepared cache; remove it or pass --force")

    if not relpaths:
        raise SystemExit(f"no files found under {root}")
    train, val, n_train, n_val = build_splits(root, relpaths)
    if len(train) + len(val) < 8 * (MAX_SEQ_LEN + 1):
        raise SystemExit(
            f"corpus under {root} is too small ({len(train) + len(val)} bytes); need at least {8 * (MAX_SEQ_LEN + 1)}"
        )
    meta = {
        "source": source,
        "python": sys.version.split()[0],
        "vocab_size": VOCAB_SIZE,
        "bos_token": BOS_TOKEN,
        "train_files": n_train,
        "val_files": n_val,
        "train_bytes": len(train),
        "val_bytes": len(val),
        "train_sha1": hashlib.sha1(train).hexdigest(),
        "val_sha1": hashlib.sha1(val).hexdigest(),
    }

    parent = os.path.dirname(os.path.abspath(cache_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(cache_dir)}.tmp-")
    os.chmod(tmp, 0o755)
    try:
        for name, data in (("train.bin", train), ("val.bin", val)):
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=2)
        old = None
        if os.path.isdir(cache_dir) and os.listdir(cache_dir):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(cache_dir)}.old-")
            os.rename(cache_dir, os.path.join(old, "data"))
        try:
            os.rename(tmp, cache_dir)  # atomic; replaces an empty dir, fails on a non-empty one
        except OSError:
            if is_prepared(cache_dir):  # another prepare won the race
                print(f"Data: already prepared at {cache_dir}")
                return
            raise
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"Data: {len(train):,} train bytes ({n_train} files), {len(val):,} val bytes ({n_val} files)")
    print(f"Data: from {source}")
    print(f"Data: written to {cache_dir} in {time.time() - t0:.1f}s")


# ---------------------------------------------------------------------------
# Runtime utilities (imported by train.py)
# ---------------------------------------------------------------------------


def _require_prepared(cache_dir=CACHE_DIR):
    if not is_prepared(cache_dir):
        raise FileNotFoundError(
            f"data is not prepared: {cache_dir} has no train.bin/val.bin/meta.json. "
            f"Run `autoresearch prepare` (or `python prepare.py`) first."
        )


def _load_split(split):
    assert split in ("train", "val")
    _require_prepared()
    with open(os.path.join(CACHE_DIR, f"{split}.bin"), "rb") as f:
        data = f.read()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


class Tokenizer:
    """Byte-level tokenizer: token id = byte value, BOS (NUL) separates documents."""

    def __init__(self, bos_token_id=BOS_TOKEN):
        self.bos_token_id = bos_token_id

    @classmethod
    def from_directory(cls, tokenizer_dir=CACHE_DIR):
        _require_prepared(tokenizer_dir)
        return cls()

    def get_vocab_size(self):
        return VOCAB_SIZE

    def get_bos_token_id(self):
        return self.bos_token_id

    def encode(self, text, prepend=None, num_threads=None):
        if isinstance(text, list):
            return [self.encode(t, prepend) for t in text]
        if not isinstance(text, str):
            raise ValueError(f"Invalid input type: {type(text)}")
        ids = list(text.encode("utf-8").replace(bytes([BOS_TOKEN]), b""))
        return ([prepend] if prepend is not None else []) + ids

    def decode(self, ids):
        return bytes(i for i in ids if i != self.bos_token_id).decode("utf-8", errors="replace")


def get_token_bytes(device="cpu"):
    """Bytes per token: 1 for every byte, 0 for BOS (excluded from bits per byte)."""
    token_bytes = torch.ones(VOCAB_SIZE, dtype=torch.int32, device=device)
    token_bytes[BOS_TOKEN] = 0
    return token_bytes


def make_dataloader(tokenizer, B, T, split, device="cpu", seed=1337):
    """
    Infinite iterator of (inputs, targets, epoch): B random windows of T+1 bytes
    from the split, on `device`. Deterministic for a given seed. `epoch` counts
    passes over the split's bytes.
    """
    data = _load_split(split)
    assert len(data) > T + 1, f"{split} split ({len(data)} bytes) is shorter than one sequence of {T + 1}"
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(T + 1)
    use_cuda = torch.device(device).type == "cuda"
    seen = 0
    while True:
        starts = torch.randint(0, len(data) - T - 1, (B, 1), generator=generator)
        rows = data[starts + offsets].long()
        if use_cuda:
            rows = rows.pin_memory().to(device, non_blocking=True)
        else:
            rows = rows.to(device)
        seen += B * T
        yield rows[:, :-1], rows[:, 1:], 1 + seen // len(data)


# ---------------------------------------------------------------------------
# Evaluation (DO NOT CHANGE — this is the fixed metric)
# ---------------------------------------------------------------------------


@torch.no_grad()
def cpu_budget_steps(step_flops, budget_seconds=TIME_BUDGET):
    """How many training steps of `step_flops` FLOPs (forward + backward) the CPU budget buys (at least 1)."""
    return max(1, int(budget_seconds * CPU_FLOPS_PER_SECOND // max(step_flops, 1)))


def evaluate_bpb(model, tokenizer, batch_size):
    """
    Bits per byte (BPB) on a fixed slice of the val split: the first EVAL_TOKENS
    bytes, cut into non-overlapping rows of MAX_SEQ_LEN. Sums per-token
    cross-entropy (in nats) and target byte counts (BOS counts 0 and is excluded
    from both), then converts nats/byte to bits/byte. `model(x, y,
    reduction='none')` must return the per-token loss.
    """
    device = next(model.parameters()).device
    data = _load_split("val")
    T = MAX_SEQ_LEN
    n_rows = min(EVAL_TOKENS, len(data) - 1) // T
    assert n_rows > 0, "val split is shorter than one sequence"
    rows = data[: n_rows * T + 1]
    x_all = rows[:-1].view(n_rows, T)
    y_all = rows[1:].view(n_rows, T)
    token_bytes = get_token_bytes(device)
    was_training = model.training
    model.eval()
    total_nats = 0.0
    total_bytes = 0
    for i in range(0, n_rows, batch_size):
        x = x_all[i : i + batch_size].to(device).long()
        y = y_all[i : i + batch_size].to(device).long()
        loss_flat = model(x, y, reduction="none").view(-1).float()
        nbytes = token_bytes[y.view(-1)]
        total_nats += (loss_flat * (nbytes > 0)).sum().item()
        total_bytes += nbytes.sum().item()
    model.train(was_training)
    return total_nats / (math.log(2) * total_bytes)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Prepare data for the tiny autoresearch experiment")
    parser.add_argument("--text-dir", help="use every file under this directory instead of the Python stdlib")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache is already prepared")
    args = parser.parse_args()

    print(f"Cache directory: {CACHE_DIR}")
    prepare(text_dir=args.text_dir, force=args.force)
    print("Done! Ready to train.")
