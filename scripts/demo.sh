#!/usr/bin/env bash
# The main job: installs the dependencies, builds flexnas, fetches the real corpora (Brown,
# SpamAssassin), trains a SentencePiece tokenizer on Brown, and runs a small real search campaign
# (examples/campaigns/demo_brown_spam.yaml: BOSHNAS over the reference test design space, each trial
# pretrained on Brown and fine-tuned on spam detection), then prints the leaderboard.
# Output: runs/demo/. Re-running continues the campaign where it stopped (--resume).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD_DIR="${FLEXNAS_BUILD_DIR:-build}"
FLEXNAS="$BUILD_DIR/bin/flexnas"
mkdir -p runs/demo
scripts/fetch-data.sh data
if [ ! -f runs/demo/spm.model ]; then
  "$FLEXNAS" tokenizer train --corpus data/brown/text.txt --vocab-size 4000 --out runs/demo/spm.model
fi
CAMPAIGN=examples/campaigns/demo_brown_spam.yaml
if [ -f runs/demo/campaign/campaign.db ]; then
  "$FLEXNAS" search "$CAMPAIGN" --resume
else
  "$FLEXNAS" search "$CAMPAIGN"
fi
STATUS=$("$FLEXNAS" status runs/demo/campaign)
echo "$STATUS"
BEST=$(echo "$STATUS" | sed -n 's|^best model: \(.*\)/pretrained (pretrained).*|\1|p')
if [ -n "$BEST" ]; then
  echo
  echo "The trials were trained on a search budget (60 pretraining steps, one epoch at 128 tokens)."
  echo "To fine-tune the best one with the full recipe (3 epochs at 256 tokens; about 8 minutes on 2 cores):"
  echo "  $FLEXNAS finetune --checkpoint $BEST/pretrained --task spam --data-dir data --out runs/demo/best-spam"
fi
