"""The shape of karpathy/autoresearch's train.py, as far as the metric guard reads it: its imports, its use of
the names it takes from prepare.py (read-only), torch.compile, the time-budget loop and the final evaluation.
Never run: tests parse it (the original needs a GPU, the `kernels` package and the prepared data)."""

import os

os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

import gc  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from kernels import get_kernel  # noqa: E402
from prepare import MAX_SEQ_LEN, TIME_BUDGET, Tokenizer, evaluate_bpb, make_dataloader  # noqa: E402

cap = torch.cuda.get_device_capability()
repo = "varunneal/flash-attention-3" if cap == (9, 0) else "kernels-community/flash-attn3"
fa3 = get_kernel(repo).flash_attn_interface


@dataclass
class GPTConfig:
    sequence_len: int = 2048
    vocab_size: int = 32768
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768
    window_pattern: str = "SSSL"


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx, targets=None, reduction="mean"):
        logits = self.lm_head(norm(self.wte(idx))).float()
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, reduction=reduction)


ASPECT_RATIO = 64
HEAD_DIM = 128
TOTAL_BATCH_SIZE = 2**19
MATRIX_LR = 0.04
WARMDOWN_RATIO = 0.5
DEPTH = 8
DEVICE_BATCH_SIZE = 128

t_start = time.time()
torch.manual_seed(42)
device = torch.device("cuda")
autocast_ctx = torch.amp.autocast(device_type="cuda", dtype=torch.bfloat16)

tokenizer = Tokenizer.from_directory()
vocab_size = tokenizer.get_vocab_size()
print(f"Vocab size: {vocab_size:,}")


def build_model_config(depth):
    base_dim = depth * ASPECT_RATIO
    model_dim = ((base_dim + HEAD_DIM - 1) // HEAD_DIM) * HEAD_DIM
    return GPTConfig(sequence_len=MAX_SEQ_LEN, vocab_size=vocab_size, n_layer=depth, n_embd=model_dim)


config = build_model_config(DEPTH)
print(f"Model config: {asdict(config)}")
model = GPT(config).to(device)
model = torch.compile(model, dynamic=False)
tokens_per_fwdbwd = DEVICE_BATCH_SIZE * MAX_SEQ_LEN
grad_accum_steps = TOTAL_BATCH_SIZE // tokens_per_fwdbwd
train_loader = make_dataloader(tokenizer, DEVICE_BATCH_SIZE, MAX_SEQ_LEN, "train")
x, y, epoch = next(train_loader)
print(f"Time budget: {TIME_BUDGET}s")


def get_lr_multiplier(progress):
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    return max(0.0, (1.0 - progress) / WARMDOWN_RATIO)


step = 0
total_training_time = 0.0
smooth_train_loss = 0.0
while True:
    torch.cuda.synchronize()
    t0 = time.time()
    for _ in range(grad_accum_steps):
        with autocast_ctx:
            loss = model(x, y)
        (loss / grad_accum_steps).backward()
        x, y, epoch = next(train_loader)
    progress = min(total_training_time / TIME_BUDGET, 1.0)
    lrm = get_lr_multiplier(progress)
    model.zero_grad(set_to_none=True)
    if math.isnan(loss.item()) or loss.item() > 100:
        print("FAIL")
        exit(1)
    torch.cuda.synchronize()
    dt = time.time() - t0
    if step > 10:
        total_training_time += dt
    pct_done = 100 * progress
    print(f"\rstep {step:05d} ({pct_done:.1f}%) | loss: {loss.item():.6f} | lrm: {lrm:.2f}    ", end="", flush=True)
    if step == 0:
        gc.collect()
        gc.freeze()
        gc.disable()
    step += 1
    if step > 10 and total_training_time >= TIME_BUDGET:
        break

print()
model.eval()
with autocast_ctx:
    val_bpb = evaluate_bpb(model, tokenizer, DEVICE_BATCH_SIZE)

t_end = time.time()
peak_vram_mb = torch.cuda.max_memory_allocated() / 1024 / 1024
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {total_training_time:.1f}")
print(f"total_seconds:    {t_end - t_start:.1f}")
print(f"peak_vram_mb:     {peak_vram_mb:.1f}")
print(f"num_steps:        {step}")
print(f"depth:            {DEPTH}")
