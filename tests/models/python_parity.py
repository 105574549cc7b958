"""Parity of python/flexnas_torch.py with the C++ models: every case directory written by
models_parity_writer holds a checkpoint and io.safetensors (input_ids, attention_mask, logits);
the Python logits and loss must agree within 1e-4. Exit 77 (ctest: skipped) when torch is not importable."""
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
    ok = diff <= 1e-4 and loss_diff <= 1e-4
    failures += not ok
    print("%-28s logits max abs diff %.3g, loss diff %.3g %s" % (case, diff, loss_diff, "ok" if ok else "FAIL"))
print("%d of %d cases agree" % (len(cases) - failures, len(cases)))
sys.exit(1 if failures else 0)
