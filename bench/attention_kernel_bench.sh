#!/usr/bin/env bash
# Attention kernels (op ak, Chang et al. 2021) against self-attention: four 2-layer models of the same
# widths (h 128, 2 heads, FFN 512; BERT-Tiny's shape) whose layers are `sa sdp`, `ak qk+convq:N`,
# `ak convfixed:N` and `ak qk+convfixed+convq+convk:N`, each pretrained with `flexnas pretrain` on Brown
# for STEPS steps (same seed, data order, tokenizer and defaults), two at a time with one thread each.
# Prints parameters, pretraining tokens/s and the held-out MLM loss of each, and the ratios to sa.
# Usage: bench/attention_kernel_bench.sh [BUILD_DIR] [TOKENIZER] [STEPS] [WINDOW] [OUT_DIR]
#   defaults: build, runs/exp/spm8k.model (trained here if missing: 8,000 pieces on Brown), 300, 8,
#   runs/attention-kernel-bench. Re-running reuses finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
tokenizer="${2:-runs/exp/spm8k.model}"
steps="${3:-300}"
window="${4:-8}"
out="${5:-runs/attention-kernel-bench}"
flexnas="$build/bin/flexnas"
[ -x "$flexnas" ] || { echo "attention_kernel_bench.sh: $flexnas not built" >&2; exit 2; }
[ -d data/brown ] || scripts/fetch-data.sh data
if [ ! -f "$tokenizer" ]; then
  mkdir -p "$(dirname "$tokenizer")"
  "$flexnas" tokenizer train --corpus data/brown/text.txt --vocab-size 8000 --out "$tokenizer"
fi
mkdir -p "$out"
names=(sa_sdp ak_qk_convq ak_convfixed ak_all)
declare -A params=([sa_sdp]="sa sdp" [ak_qk_convq]="ak qk+convq:$window" [ak_convfixed]="ak convfixed:$window"
                   [ak_all]="ak qk+convfixed+convq+convk:$window")
for name in "${names[@]}"; do
  read -r op p <<< "${params[$name]}"
  echo "{\"l\":2,\"h\":[128,128],\"n\":[2,2],\"o\":[\"$op\",\"$op\"],\"f\":[[512],[512]],\"p\":[\"$p\",\"$p\"]}" > "$out/$name.json"
  "$flexnas" model info --arch "$out/$name.json" --vocab-size 8000 --json > "$out/$name.info.json"
done
run() {  # name
  local name=$1
  if [ ! -f "$out/$name/metrics.json" ] || ! grep -q "\"step\": $steps," "$out/$name/metrics.json"; then
    rm -rf "${out:?}/$name"
    "$flexnas" pretrain --arch "$out/$name.json" --tokenizer "$tokenizer" --corpus data/brown/text.txt --steps "$steps" \
      --seed 1 --threads 1 --out "$out/$name" > "$out/$name.log" 2>&1
  fi
}
start=$(date +%s)
run sa_sdp & a=$!
run ak_qk_convq
wait "$a"
run ak_convfixed & a=$!
run ak_all
wait "$a"
/usr/bin/python3 - "$out" "${names[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
rows = {}
for n in names:
    m = json.load(open(f"{out}/{n}/metrics.json"))
    arch = json.load(open(f"{out}/{n}.json"))
    info = json.load(open(f"{out}/{n}.info.json"))
    rows[n] = (arch["o"][0] + " " + arch["p"][0], info["total_params"], m["tokens_per_second"], m["eval_loss"])
base = rows[names[0]]
print("| layers | parameters | tokens/s | ratio to sa | held-out MLM loss | minus sa |")
print("|---|---|---|---|---|---|")
for n in names:
    label, params, tps, loss = rows[n]
    print(f"| `{label}` | {params:,} | {tps:,.0f} | {tps / base[2]:.2f}x | {loss:.4f} | {loss - base[3]:+.4f} |")
PY
echo "took $(( $(date +%s) - start )) s"
