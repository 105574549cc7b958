#!/usr/bin/env bash
# bf16 against fp32 on accuracy: the same architecture pretrained on Brown for STEPS steps with the
# same seed in each precision, then fine-tuned on spam with the defaults (in the same precision);
# prints the held-out MLM losses and spam scores and their differences (targets: MLM loss within 2 %,
# spam score within 0.5 points).
# Usage: bench/precision_accuracy.sh [BUILD_DIR] [TOKENIZER] [STEPS] [ARCH_JSON] [OUT_DIR]
#   defaults: build, runs/exp/spm8k.model (trained here if missing: 8,000 pieces on Brown), 1000,
#   examples/archs/bert_tiny.json, runs/precision-accuracy. The two precisions run side by side,
#   one thread each. Re-running reuses finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
tokenizer="${2:-runs/exp/spm8k.model}"
steps="${3:-1000}"
arch="${4:-examples/archs/bert_tiny.json}"
out="${5:-runs/precision-accuracy}"
flexnas="$build/bin/flexnas"
[ -x "$flexnas" ] || { echo "precision_accuracy.sh: $flexnas not built" >&2; exit 2; }
[ -f "$arch" ] || { echo "precision_accuracy.sh: $arch: no such file" >&2; exit 2; }
[ -d data/brown ] || scripts/fetch-data.sh data
if [ ! -f "$tokenizer" ]; then
  mkdir -p "$(dirname "$tokenizer")"
  "$flexnas" tokenizer train --corpus data/brown/text.txt --vocab-size 8000 --out "$tokenizer"
fi
mkdir -p "$out"
run() {  # precision
  local p=$1
  if [ ! -f "$out/pre-$p/metrics.json" ] || ! grep -q "\"step\": $steps," "$out/pre-$p/metrics.json"; then
    rm -rf "$out/pre-$p"
    "$flexnas" pretrain --arch "$arch" --tokenizer "$tokenizer" --corpus data/brown/text.txt --steps "$steps" \
      --seed 1 --threads 1 --precision "$p" --out "$out/pre-$p" > "$out/pre-$p.log" 2>&1
  fi
  if [ ! -f "$out/spam-$p/metrics.json" ]; then
    "$flexnas" finetune --checkpoint "$out/pre-$p" --task spam --data-dir data --threads 1 --precision "$p" \
      --out "$out/spam-$p" > "$out/spam-$p.log" 2>&1
  fi
}
start=$(date +%s)
run fp32 & pid=$!
run bf16
wait "$pid"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = {}
for p in ("fp32", "bf16"):
    pre = json.load(open(f"{out}/pre-{p}/metrics.json"))
    ft = json.load(open(f"{out}/spam-{p}/metrics.json"))
    rows[p] = (pre["eval_loss"], pre["tokens_per_second"], ft["score"], ft["dev"]["accuracy"], ft.get("collapsed", False))
    print(f"{p}: held-out MLM loss {rows[p][0]:.4f}, pretraining {rows[p][1]:.0f} tokens/s; "
          f"spam score {rows[p][2]:.4f} (dev accuracy {rows[p][3]:.4f}){' COLLAPSED' if rows[p][4] else ''}")
d_loss = (rows["bf16"][0] - rows["fp32"][0]) / rows["fp32"][0] * 100
d_score = (rows["bf16"][2] - rows["fp32"][2]) * 100
print(f"bf16 - fp32: MLM loss {d_loss:+.2f} % (target within 2 %: {'met' if abs(d_loss) <= 2 else 'NOT met'}), "
      f"spam score {d_score:+.2f} points (target within 0.5: {'met' if abs(d_score) <= 0.5 else 'NOT met'})")
PY
echo "took $(( $(date +%s) - start )) s"
