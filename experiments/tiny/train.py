"""
Tiny autoresearch pretraining script. Single-device, single-file, plain PyTorch.
A small byte-level GPT trained for a fixed time budget, then scored in bits per byte.
Runs on CUDA (bf16), Apple MPS or CPU. Usage: python train.py

On a CPU the budget is compute, not time: TIME_BUDGET seconds at prepare.py's reference rate
(CPU_FLOPS_PER_SECOND), turned into a number of steps from the FLOPs of this model's first training
step (measured by torch's FLOP counter). A busy machine makes the run take longer but gives it the
same steps, so the same code gets the same val_bpb on an idle laptop and on a loaded shared box
(wall time gave 8 to 186 steps for the same code there; even this process's CPU time varies by ~5%
per step under load, which moves val_bpb by ~0.03 at ~120 steps). One thread: thread pools spin
while they wait, which is slow on a shared machine. On CUDA/MPS the budget is wall-clock time, as in
karpathy's train.py.
"""

import contextlib
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from prepare import MAX_SEQ_LEN, TIME_BUDGET, Tokenizer, cpu_budget_steps, evaluate_bpb, make_dataloader
from torch.utils.flop_counter import FlopCounterMode

# ---------------------------------------------------------------------------
# Hyperparameters (edit these directly, no CLI flags needed)
# ---------------------------------------------------------------------------

# Model architecture
DEPTH = 2  # number of transformer blocks
N_HEAD = 2  # attention heads per block
HEAD_DIM = 32  # channels per head; model width = N_HEAD * HEAD_DIM
MLP_RATIO = 4  # MLP hidden width = MLP_RATIO * model width

# Optimization (AdamW)
BATCH_SIZE = 8  # sequences of MAX_SEQ_LEN bytes per step
MATRIX_LR = 0.008  # learning rate of the transformer blocks' matrices
EMBEDDING_LR = 0.03  # learning rate of the byte embedding
UNEMBEDDING_LR = 0.008  # learning rate of the output head
WEIGHT_DECAY = 0.1  # AdamW weight decay on matrices
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.95
GRAD_CLIP = 1.0  # max gradient norm (0 disables)
WARMUP_RATIO = 0.05  # share of the time budget for LR warmup
WARMDOWN_RATIO = 0.4  # share of the time budget for the final LR decay
FINAL_LR_FRAC = 0.0  # LR at the end, as a fraction of the peak

# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len, head_dim, device):
    half = head_dim // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32, device=device) / max(half, 1)))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return angles.cos()[None, None], angles.sin()[None, None]


def apply_rotary(x, cos, sin):
    # rotates the first 2 * (head_dim // 2) channels; an odd last channel passes through
    half = cos.size(-1)
    x1, x2, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, head_dim):
        super().__init__()
        self.n_head, self.head_dim = n_head, head_dim
        self.c_qkv = nn.Linear(n_embd, 3 * n_head * head_dim, bias=False)
        self.c_proj = nn.Linear(n_head * head_dim, n_embd, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q, k, v = self.c_qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, n_embd, hidden):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, n_embd, n_head, head_dim, mlp_hidden):
        super().__init__()
        self.attn = CausalSelfAttention(n_embd, n_head, head_dim)
        self.mlp = MLP(n_embd, mlp_hidden)

    def forward(self, x, cos, sin):
        x = x + self.attn(norm(x), cos, sin)
        x = x + self.mlp(norm(x))
        return x


class GPT(nn.Module):
    def __init__(self, vocab_size, seq_len, depth, n_head, head_dim, mlp_ratio):
        super().__init__()
        self.n_embd = n_head * head_dim
        self.wte = nn.Embedding(vocab_size, self.n_embd)
        self.blocks = nn.ModuleList(
            [Block(self.n_embd, n_head, head_dim, max(1, round(mlp_ratio * self.n_embd))) for _ in range(depth)]
        )
        self.lm_head = nn.Linear(self.n_embd, vocab_size, bias=False)
        cos, sin = rotary_tables(seq_len, head_dim, device=None)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        scale = 3**0.5 * self.n_embd**-0.5  # uniform with std 1/sqrt(n_embd)
        nn.init.normal_(self.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        for block in self.blocks:
            nn.init.uniform_(block.attn.c_qkv.weight, -scale, scale)
            nn.init.uniform_(block.mlp.c_fc.weight, -scale, scale)
            nn.init.zeros_(block.attn.c_proj.weight)  # each block starts as the identity
            nn.init.zeros_(block.mlp.c_proj.weight)

    def forward(self, idx, targets=None, reduction="mean"):
        T = idx.size(1)
        cos, sin = self.cos[:, :, :T], self.sin[:, :, :T]
        x = norm(self.wte(idx))
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.lm_head(norm(x)).float()
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)


def get_lr_multiplier(progress):
    """Linear warmup, constant, then linear warmdown to FINAL_LR_FRAC; progress = elapsed / TIME_BUDGET."""
    if progress < WARMUP_RATIO:
        return progress / WARMUP_RATIO
    if WARMDOWN_RATIO <= 0 or progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    cooldown = max(0.0, (1.0 - progress) / WARMDOWN_RATIO)
    return cooldown + (1.0 - cooldown) * FINAL_LR_FRAC


def cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 1024 / 1024
    # On CPU/MPS there is no VRAM: report the process's peak resident memory instead
    # (ru_maxrss is in KB on Linux, bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

if __name__ == "__main__":
    t_start = time.time()
    torch.manual_seed(42)
    if torch.cuda.is_available():
        device = torch.device("cuda")
        torch.cuda.manual_seed(42)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # see the docstring
    # bf16 matmuls on CUDA, and on CPUs with native bf16 instructions (much faster there); fp32 otherwise
    use_bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    autocast_ctx = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    assert min(DEPTH, N_HEAD, HEAD_DIM, MLP_RATIO, BATCH_SIZE) >= 1, "DEPTH, N_HEAD, HEAD_DIM, MLP_RATIO, BATCH_SIZE must be >= 1"

    tokenizer = Tokenizer.from_directory()
    train_loader = make_dataloader(tokenizer, BATCH_SIZE, MAX_SEQ_LEN, "train", device=device)
    x, y, epoch = next(train_loader)

    model = GPT(tokenizer.get_vocab_size(), MAX_SEQ_LEN, DEPTH, N_HEAD, HEAD_DIM, MLP_RATIO).to(device)
    num_params = sum(p.numel() for p in model.parameters())
    n_embd = model.n_embd
    # FLOPs per token for MFU: 6 per weight (forward + backward) plus attention
    flops_per_token = 6 * (num_params - model.wte.weight.numel()) + 12 * DEPTH * N_HEAD * HEAD_DIM * MAX_SEQ_LEN
    tokens_per_step = BATCH_SIZE * MAX_SEQ_LEN

    matrices = [p for b in model.blocks for p in b.parameters()]
    param_groups = [
        dict(params=matrices, lr=MATRIX_LR, weight_decay=WEIGHT_DECAY),
        dict(params=[model.wte.weight], lr=EMBEDDING_LR, weight_decay=0.0),
        dict(params=[model.lm_head.weight], lr=UNEMBEDDING_LR, weight_decay=0.0),
    ]
    for group in param_groups:
        group["initial_lr"] = group["lr"]
    optimizer = torch.optim.AdamW(param_groups, betas=(ADAM_BETA1, ADAM_BETA2), eps=1e-10, fused=device.type == "cuda")

    print(
        f"Device: {device} | threads: {torch.get_num_threads()} | params: {num_params / 1e6:.2f}M | "
        f"width: {n_embd} | depth: {DEPTH} | tokens/step: {tokens_per_step:,}"
    )
    print(
        f"Time budget: {TIME_BUDGET}s ({'compute: steps from FLOPs, see below' if device.type == 'cpu' else 'wall-clock time'})"
    )
    sys.stdout.flush()

    smooth_train_loss = 0.0
    total_training_time = 0.0
    step = 0
    last_print = -1.0
    budget_steps = None  # on a CPU: the number of steps the budget buys, known after the first step
    while True:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.time()
        progress = step / budget_steps if budget_steps else min(total_training_time / TIME_BUDGET, 1.0)
        lrm = get_lr_multiplier(progress)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lrm

        with FlopCounterMode(display=False) if step == 0 else contextlib.nullcontext() as counter:
            with autocast_ctx:
                loss = model(x, y)
            loss.backward()
        if step == 0 and device.type == "cpu":
            step_flops = counter.get_total_flops()
            budget_steps = cpu_budget_steps(step_flops)
            print(f"CPU budget: {budget_steps} steps of {step_flops / 1e9:.2f} GFLOP each (load-independent)", flush=True)
        if GRAD_CLIP > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        x, y, epoch = next(train_loader)

        train_loss = loss.item()  # syncs the device
        if math.isnan(train_loss) or train_loss > 100:
            print("FAIL")
            sys.stdout.flush()
            sys.exit(1)

        dt = time.time() - t0
        if step > 0:  # the first step is warmup (kernel selection, allocations): not counted
            total_training_time += dt
        step += 1
        ema_beta = 0.9
        smooth_train_loss = ema_beta * smooth_train_loss + (1 - ema_beta) * train_loss
        debiased = smooth_train_loss / (1 - ema_beta**step)
        done = step >= budget_steps if budget_steps else total_training_time >= TIME_BUDGET
        if done or step == 1 or total_training_time - last_print >= max(0.5, TIME_BUDGET / 100):
            last_print = total_training_time
            share = step / budget_steps if budget_steps else total_training_time / TIME_BUDGET
            pct_done = 100 * min(share, 1.0)
            remaining = max(0.0, TIME_BUDGET * (1.0 - share))
            print(
                f"step {step:05d} ({pct_done:.1f}%) | loss: {debiased:.6f} | lrm: {lrm:.2f} | "
                f"dt: {dt * 1000:.0f}ms | tok/sec: {int(tokens_per_step / dt):,} | epoch: {epoch} | "
                f"remaining: {remaining:.0f}s",
                flush=True,
            )
        if done:
            break

    total_tokens = step * tokens_per_step
    t_train = time.time()
    with autocast_ctx:
        val_bpb = evaluate_bpb(model, tokenizer, 64)
    t_end = time.time()
    print(f"Final eval completed in {t_end - t_train:.1f}s")

    mfu = 0.0
    if device.type == "cuda":
        peak_flops = 989.5e12  # H100 SXM bf16 dense
        mfu = 100 * flops_per_token * total_tokens / total_training_time / peak_flops

    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    print(f"training_seconds: {total_training_time:.1f}")
    print(f"total_seconds:    {t_end - t_start:.1f}")
    print(f"peak_vram_mb:     {peak_memory_mb(device):.1f}")
    print(f"mfu_percent:      {mfu:.2f}")
    print(f"total_tokens_M:   {total_tokens / 1e6:.1f}")
    print(f"num_steps:        {step}")
    print(f"num_params_M:     {num_params / 1e6:.1f}")
    print(f"depth:            {DEPTH}")
