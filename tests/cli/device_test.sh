#!/usr/bin/env bash
# `flexnas device`: the OpenBLAS kernel choice as a user meets it.
# - OPENBLAS_CORETYPE unset: the kernel the process runs is the strongest the CPU allows (chosen by
#   flexnas when OpenBLAS fell back to a generic one, OpenBLAS's own pick otherwise);
# - set by the user: left exactly as it is, even when it is the slow generic kernel;
# - --device cuda on a LibTorch without CUDA: exit 2 naming the flag.
set -euo pipefail
flexnas=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { grep -o "\"$1\": \"[^\"]*\"" <<<"$2" | sed 's/^[^:]*: "//; s/"$//'; }

out=$(env -u OPENBLAS_CORETYPE -u FLEXNAS_BLAS_CHOSEN -u FLEXNAS_BLAS_REFUSED "$flexnas" device --json)
kernel=$(field blas_kernel "$out"); best=$(field blas_kernel_best "$out"); note=$(field blas_kernel_note "$out")
echo "unset: kernel '$kernel', best for this CPU '$best', note: $note"
if [ -n "$best" ]; then
  case "$note" in
    *"right for this CPU"*) ;;                                   # OpenBLAS picked well by itself
    *"flexnas set OPENBLAS_CORETYPE=$best"*) [ "$kernel" = "$best" ] || fail "chose $best, runs $kernel" ;;
    *) fail "unexpected note: $note" ;;
  esac
fi

out=$(OPENBLAS_CORETYPE=Prescott "$flexnas" device --json)
[ "$(field blas_kernel "$out")" = Prescott ] || fail "a user's OPENBLAS_CORETYPE=Prescott was changed: $out"
[ "$(field openblas_coretype "$out")" = Prescott ] || fail "OPENBLAS_CORETYPE not kept: $out"
grep -q 'set outside flexnas: left as it is' <<<"$out" || fail "no note on the user's choice: $out"
echo "set: Prescott kept"

if ! grep -q '"libtorch_cuda": true' <<<"$out"; then
  set +e
  err=$("$flexnas" device --device cuda 2>&1); code=$?
  set -e
  [ "$code" = 2 ] || fail "--device cuda without CUDA exited $code"
  grep -q "error: --device: 'cuda': this LibTorch was built without CUDA" <<<"$err" || fail "message: $err"
  echo "no-CUDA error: exit 2"
fi
echo "device test passed"
