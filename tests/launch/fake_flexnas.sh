#!/bin/sh
# Stands in for the flexnas executable in builtin-evaluator tests (evaluator.executable), so that
# campaigns with warm starts run in milliseconds:
#   pretrain --arch A ... --out D [--init-from S --init-mode M]  writes D/config.json (a checkpoint
#            config with A's architecture) and D/init_from.txt (S, or "scratch");
#   finetune --checkpoint D ... --out F                          writes F/metrics.json, a score
#            derived from the architecture alone (so it does not depend on timing).
#   model profile --arch A --seq-lens T --batch-size B ... --json J
#            writes J as `flexnas model profile` does, with forward_ms and peak_train_mb derived
#            from the architecture alone (cksum: 0.5..99.5 ms, 0..999 MiB), and appends A's
#            content to $FAKE_PROFILE_LOG when set (the tests count measurements).
# FAKE_SLEEP=S makes finetune sleep S seconds first (a campaign slow enough to be killed mid-way).
set -eu
verb=$1
shift
arch= out= init=scratch checkpoint= json= seq=128 batch=32
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift ;;
    --out) out=$2; shift ;;
    --init-from) init=$2; shift ;;
    --checkpoint) checkpoint=$2; shift ;;
    --json) json=$2; shift ;;
    --seq-lens) seq=$2; shift ;;
    --batch-size) batch=$2; shift ;;
  esac
  shift
done
if [ -n "$out" ]; then mkdir -p "$out"; fi
case "$verb" in
  model)
    sum=$(tr -d ' \n' < "$arch" | cksum | cut -d' ' -f1)
    if [ -n "${FAKE_PROFILE_LOG:-}" ]; then tr -d ' \n' < "$arch" >> "$FAKE_PROFILE_LOG"; echo >> "$FAKE_PROFILE_LOG"; fi
    printf '{"parameters": 1, "rows": [{"seq_len": %s, "batch_size": %s, "forward_ms": %s.5, "train_step_ms": 1, "train_tokens_per_second": 1, "peak_train_mb": %s, "max_train_batch": 1}]}\n' \
      "$seq" "$batch" "$((sum % 100))" "$((sum / 100 % 1000))" > "$json" ;;
  pretrain)
    printf '{"format": "flexnas-checkpoint", "format_version": 1, "architecture": %s, "model": {"vocab_size": 100}}\n' \
      "$(cat "$arch")" > "$out/config.json"
    echo "$init" > "$out/init_from.txt" ;;
  finetune)
    if [ -n "${FAKE_SLEEP:-}" ]; then sleep "$FAKE_SLEEP"; fi
    # The whole config (the architecture spans several lines), blanks dropped: a score per architecture.
    sum=$(tr -d ' \n' < "$checkpoint/config.json" | cksum | cut -d' ' -f1)
    echo "{\"score\": 0.$((sum % 1000 + 1000))}" > "$out/metrics.json" ;;
  *) echo "fake_flexnas: unknown verb $verb" >&2; exit 2 ;;
esac
