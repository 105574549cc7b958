"""Parity of python/flexnas_torch.py with the C++ models: every case directory written by
models_parity_writer holds a checkpoint and io.safetensors (input_ids, attention_mask, logits);
the Python logits and loss must agree within 1e-4,
and the FLOPs measured on the instantiated model must equal model_cost's. Exit 77 (ctest: skipped) when torch is not importable."""
import os
import sys

try:
    import torch
except ImportError as e:
    print("SKIPPED: %s cannot import torch (%s); install Debian's python3-torch" % (sys.executable, e))
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import flexnas_torch  # noqa: E402

root = sys.argv[1]
cases = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
if not cases:
    print("no cases in %s" % root)
    sys.exit(1)


def measured_flops_per_token(model, ids, mask):
    """Forward FLOPs of the instantiated model: the profiler's matrix products (aten::mm, addmm,
    bmm) plus the convolutions it does not count (Conv1d hooks, the dynamic-convolution sums)."""
    from torch.profiler import profile, ProfilerActivity
    extra = [0.0]

    def conv_hook(m, inputs, output):
        extra[0] += 2.0 * output.numel() * (m.in_channels // m.groups) * m.kernel_size[0]

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    original = flexnas_torch.dynamic_conv

    def counted(values, kernel, heads):
        extra[0] += 2.0 * values.numel() * kernel.shape[-1]
        return original(values, kernel, heads)

    flexnas_torch.dynamic_conv = counted
    try:
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            model(ids, mask)
    finally:
        flexnas_torch.dynamic_conv = original
        for h in hooks:
            h.remove()
    matmul = sum(e.flops for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    return (matmul + extra[0]) / ids.numel()


failures = 0
for case in cases:
    directory = os.path.join(root, case)
    model = flexnas_torch.load(directory)
    io = flexnas_torch.read_safetensors(os.path.join(directory, "io.safetensors"))
    with torch.no_grad():
        logits = model(io["input_ids"], io["attention_mask"])
        loss = model.loss(io["input_ids"], io["attention_mask"], io["labels"])
    diff = (logits - io["logits"]).abs().max().item() if logits.shape == io["logits"].shape else float("inf")
    loss_diff = abs(loss.item() - io["loss"].item())
    flops = measured_flops_per_token(model, io["input_ids"], io["attention_mask"])
    flops_ok = abs(flops - io["flops_per_token"].item()) <= 1e-6 * flops
    ok = diff <= 1e-4 and loss_diff <= 1e-4 and flops_ok
    failures += not ok
    print("%-28s logits max abs diff %.3g, loss diff %.3g, FLOPs/token %.0f measured vs %.0f from the model dict %s"
          % (case, diff, loss_diff, flops, io["flops_per_token"].item(), "ok" if ok else "FAIL"))
print("%d of %d cases agree" % (len(cases) - failures, len(cases)))
sys.exit(1 if failures else 0)
