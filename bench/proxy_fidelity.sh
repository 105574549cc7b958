#!/usr/bin/env bash
# Proxy fidelity benchmark (issue "Proxy fidelity benchmark"): 12 architectures spread over the test
# design space, each evaluated at the demo campaign's cheap budget (read from the campaign YAML's
# evaluator section) and at an 8x budget; reports Spearman's rho between the two (bootstrap 95% CI,
# Kendall's tau-b) and the fraction of collapsed (one-class) evaluations. Target: rho >= 0.7.
#
# Usage: bench/proxy_fidelity.sh [--campaign examples/campaigns/demo_brown_spam.yaml] [--archs 12]
#          [--seed 1] [--factor 8] [--finetune-budget full|scaled|same] [--jobs 2]
#          [--out runs/proxy-fidelity] [--data data] [--tokenizer runs/demo/spm.model]
#          [--steps-scale 1.0] [--dry-run] [--report-only] [--help]
# Defaults for --data/--tokenizer/--corpus/--design-space come from the campaign. Interrupted? Run the
# same command again: finished runs are skipped. Smoke test (a couple of minutes):
#   bench/proxy_fidelity.sh --archs 2 --steps-scale 0.1 --jobs 1 --out runs/proxy-smoke
# Everything (budgets, selection, outputs) is documented in bench/proxy_fidelity.py.
# Exit: 0 ok, 1 some runs failed, 2 bad flag or missing file, 130 interrupted.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3
[ -x "$py" ] || py="$(command -v python3 || true)"
[ -n "$py" ] || { echo "proxy_fidelity.sh: python3 not found" >&2; exit 2; }
exec "$py" "$here/proxy_fidelity.py" "$@"
