#!/usr/bin/python3
"""The Python peer of bench/train_bench.cpp: the same MLM training step on the same model and batch,
with python/flexnas_torch.py on Debian's PyTorch 1.13 (torch.optim.AdamW with two parameter groups:
no decay on biases and LayerNorm; beta2 0.98, eps 1e-6, weight decay 0.01; clip_grad_norm_ 1.0).

    /usr/bin/python3 bench/train_bench.py --checkpoint DIR [--threads T] [--steps N] [--warmup W]
                                          [--precision fp32|bf16]
DIR is written by `train_bench --save DIR` (checkpoint + batch.safetensors). Prints one JSON line with
the same fields as train_bench (CPU time and minor page faults per step from getrusage; the OpenBLAS
thread count and kernel are only read: bench/train_bench.sh sets OPENBLAS_NUM_THREADS and
OPENBLAS_CORETYPE for both sides).

--precision bf16 is train_bench's: torch.autocast("cpu", dtype=torch.bfloat16) around the forward pass
and the loss only; backward, clipping and the optimiser step outside it, weights and gradients fp32.
The model keeps the C++ model's fp32 islands (python/flexnas_torch.py). After the timed steps, one more
forward + backward runs under a dispatch-mode census that counts the matrix products and
convolutions by the dtype they ran in ("products" in the JSON), so a product that fell back to fp32
under bf16 shows up instead of passing silently.
"""
import argparse
import collections
import contextlib
import ctypes
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import torch  # noqa: E402
import flexnas_torch  # noqa: E402


def blas_threads():
    """OpenBLAS's thread count as seen by this process (reported, not changed), 0 if unknown."""
    try:
        return int(ctypes.CDLL("libopenblas.so.0").openblas_get_num_threads())
    except (AttributeError, OSError):
        return 0


def blas_kernel():
    """The OpenBLAS kernel ("core") this process runs, "" if unknown."""
    try:
        f = ctypes.CDLL("libopenblas.so.0").openblas_get_corename
        f.restype = ctypes.c_char_p
        return f().decode()
    except (AttributeError, OSError):
        return ""


# Matrix products and convolutions (forward and backward) as the dispatcher sees them after autocast.
_PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear", "convolution", "_convolution",
             "convolution_backward", "mkldnn_convolution", "mkldnn_linear"}


def product_census(fn):
    """Runs fn() and returns {op: {dtype: count}} of the matrix products and convolutions it ran."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = collections.defaultdict(collections.Counter)

    class Census(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = str(func.overloadpacket).split(".")[-1]
            if name in _PRODUCTS:
                first = next((a for a in args if isinstance(a, torch.Tensor)), None)
                counts[name][str(first.dtype).replace("torch.", "") if first is not None else "?"] += 1
            return func(*args, **(kwargs or {}))

    with Census():
        fn()
    return {op: dict(c) for op, c in sorted(counts.items())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--shape", default="")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = flexnas_torch.load(a.checkpoint).train()
    batch = flexnas_torch.read_safetensors(os.path.join(a.checkpoint, "batch.safetensors"))
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]

    def decays(name):
        return not (name == "bias" or name.endswith(".bias") or "LayerNorm" in name)

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if decays(n)], "weight_decay": 0.01},
              {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.98), eps=1e-6)

    def autocast():
        if a.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward_backward():
        with autocast():
            loss = model.loss(ids, mask, labels)
        loss.backward()
        return loss

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward_backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    u0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    last = 0.0
    for _ in range(a.steps):
        last = step()
    seconds = time.perf_counter() - t0
    u1 = resource.getrusage(resource.RUSAGE_SELF)
    per_step = 1.0 / max(1, a.steps)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    opt.zero_grad(set_to_none=True)
    products = product_census(forward_backward)  # after the timing: the census slows its step down
    b, t = ids.shape
    print(json.dumps({"impl": "python", "precision": a.precision, "shape": a.shape, "threads": a.threads, "vocab": model.options["vocab_size"],
                      "batch": b, "len": t, "params": sum(p.numel() for p in model.parameters()),
                      "tokens_per_second": round(b * t * a.steps / seconds, 1),
                      "step_ms": round(1000 * seconds / a.steps, 1),
                      "cpu_ms_per_step": round(1000 * (u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime) * per_step, 1),
                      "faults_per_step": round((u1.ru_minflt - u0.ru_minflt) * per_step),
                      "blas_threads": blas_threads(),
                      "blas_kernel": blas_kernel(), "peak_rss_mib": round(peak_rss),
                      "last_loss": round(last, 4), "torch": torch.__version__, "products": products}))


if __name__ == "__main__":
    main()
