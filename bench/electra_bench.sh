#!/usr/bin/env bash
# ELECTRA vs MLM pretraining at equal compute on Brown, then both fine-tuned on spam and brown-genre
# with the default fine-tuning recipe (bench/RESULTS-electra.md).
#
#   bench/electra_bench.sh [BUILD_DIR] [TOKENIZER] [ELECTRA_STEPS] [OUT]
#   defaults: build runs/demo/spm.model 800 runs/electra-bench; ARCH=... picks the model dict
#   (default examples/archs/bert_tiny.json), LR=... the pretraining peak rate (default 5e-4).
#
# Equal compute = equal training wall time at the same batch: ELECTRA steps cost more (the
# generator's forward and backward, the discriminator head on every token), so MLM gets
# round(ELECTRA_STEPS x t_electra / t_mlm) steps, with t from two interleaved 20-step calibration
# runs of each (median training tokens/s, evaluation excluded). Needs data/brown and
# data/spam-assassin (scripts/fetch-data.sh data) and a tokenizer (flexnas tokenizer train).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
TOK="${2:-runs/demo/spm.model}"
STEPS="${3:-800}"
OUT="${4:-runs/electra-bench}"
ARCH="${ARCH:-examples/archs/bert_tiny.json}"
LR="${LR:-5e-4}"
B="$BUILD/bin/flexnas"
PY=/usr/bin/python3
mkdir -p "$OUT"
common=(--arch "$ARCH" --tokenizer "$TOK" --corpus data/brown/text.txt --threads 2 --seed 1 --lr "$LR")
log() { echo "[electra-bench $(date +%H:%M:%S)] $*"; }
start=$(date +%s)

log "calibration: 20 steps of each objective, twice, interleaved"
for i in 1 2; do
  rm -rf "$OUT/cal-electra-$i" "$OUT/cal-mlm-$i"
  "$B" pretrain "${common[@]}" --steps 20 --warmup-steps 2 --max-eval-batches 1 --objective electra \
    --out "$OUT/cal-electra-$i" >/dev/null
  "$B" pretrain "${common[@]}" --steps 20 --warmup-steps 2 --max-eval-batches 1 --out "$OUT/cal-mlm-$i" >/dev/null
done
MLM_STEPS=$($PY - "$OUT" "$STEPS" <<'EOF'
import json, statistics, sys
out, steps = sys.argv[1], int(sys.argv[2])
tps = lambda name: statistics.median(json.load(open(f"{out}/cal-{name}-{i}/metrics.json"))["tokens_per_second"] for i in (1, 2))
e, m = tps("electra"), tps("mlm")
json.dump({"electra_tokens_per_second": e, "mlm_tokens_per_second": m, "cost_ratio": m / e,
           "electra_steps": steps, "mlm_steps": round(steps * m / e)}, open(f"{out}/calibration.json", "w"), indent=2)
print(round(steps * m / e))
EOF
)
log "calibration: $(tr -d '\n ' < "$OUT/calibration.json")"

run_timed() {  # NAME COMMAND...: wall seconds into OUT/NAME.seconds
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" > "$OUT/$name.log" 2>&1
  echo "$(date +%s.%N) - $t0" | bc > "$OUT/$name.seconds"
  log "$name: $(cat "$OUT/$name.seconds") s"
}

rm -rf "$OUT/electra" "$OUT/mlm"
run_timed pretrain-electra "$B" pretrain "${common[@]}" --steps "$STEPS" --objective electra --log-every 50 --out "$OUT/electra"
run_timed pretrain-mlm "$B" pretrain "${common[@]}" --steps "$MLM_STEPS" --log-every 50 --out "$OUT/mlm"
for model in electra mlm; do
  for task in spam brown-genre; do
    rm -rf "$OUT/$model-$task"
    run_timed "finetune-$model-$task" "$B" finetune --checkpoint "$OUT/$model" --task "$task" --threads 2 --out "$OUT/$model-$task"
  done
done

$PY - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
cal = json.load(open(f"{out}/calibration.json"))
sec = lambda n: float(open(f"{out}/{n}.seconds").read())
print(f"\ncost ratio electra/mlm per step: {cal['cost_ratio']:.3f} "
      f"({cal['electra_tokens_per_second']:.0f} vs {cal['mlm_tokens_per_second']:.0f} training tokens/s)")
print("| objective | steps | pretrain wall s | train tokens/s | held-out | spam dev / test | brown-genre dev / test |")
print("|---|---|---|---|---|---|---|")
for m in ("electra", "mlm"):
    p = json.load(open(f"{out}/{m}/metrics.json"))
    if m == "electra":
        held = (f"gen MLM {p['eval_generator_loss']:.3f}, disc BCE {p['eval_discriminator_loss']:.4f}, "
                f"RTD acc {p['eval_rtd_accuracy']:.4f} (all-original {p['eval_original_baseline']:.4f})")
    else:
        held = f"MLM {p['eval_loss']:.3f}"
    cells = []
    for t in ("spam", "brown-genre"):
        f = json.load(open(f"{out}/{m}-{t}/metrics.json"))
        cells.append(f"{f['dev']['score']:.4f} / {f['test']['score']:.4f}" if "test" in f else f"{f['dev']['score']:.4f}")
    print(f"| {m} | {p['step']} | {sec('pretrain-' + m):.0f} | {p['tokens_per_second']:.0f} | {held} | {cells[0]} | {cells[1]} |")
EOF
log "total $(( $(date +%s) - start )) s"
