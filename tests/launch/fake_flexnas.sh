#!/bin/sh
# Stands in for the flexnas executable in builtin-evaluator tests (evaluator.executable), so that
# campaigns with warm starts run in milliseconds:
#   pretrain --arch A ... --out D [--init-from S --init-mode M]  writes D/config.json (a checkpoint
#            config with A's architecture) and D/init_from.txt (S, or "scratch");
#   finetune --checkpoint D ... --out F                          writes F/metrics.json, a score
#            derived from the architecture alone (so it does not depend on timing).
set -eu
verb=$1
shift
arch= out= init=scratch checkpoint=
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift ;;
    --out) out=$2; shift ;;
    --init-from) init=$2; shift ;;
    --checkpoint) checkpoint=$2; shift ;;
  esac
  shift
done
mkdir -p "$out"
case "$verb" in
  pretrain)
    printf '{"format": "flexnas-checkpoint", "format_version": 1, "architecture": %s, "model": {"vocab_size": 100}}\n' \
      "$(cat "$arch")" > "$out/config.json"
    echo "$init" > "$out/init_from.txt" ;;
  finetune)
    sum=$(sed -n 's/.*"architecture": \(.*\), "model".*/\1/p' "$checkpoint/config.json" | cksum | cut -d' ' -f1)
    echo "{\"score\": 0.$((sum % 1000 + 1000))}" > "$out/metrics.json" ;;
  *) echo "fake_flexnas: unknown verb $verb" >&2; exit 2 ;;
esac
