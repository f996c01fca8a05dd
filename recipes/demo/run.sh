#!/usr/bin/env bash
# Offline demo: synthesise speech with eSpeak NG, train a small BiLSTM-CTC model,
# evaluate WER on held-out voices (greedy, then beam search with a word 3-gram LM built from
# the training transcripts), transcribe two test files. About 10 minutes on 2 CPU cores.
#
#   bash recipes/demo/run.sh [--exp-dir exp/demo] [--stage 1] [--stop-stage 4]
#
# Stages: 1 prepare data, 2 train, 3 evaluate (greedy), 4 LM + beam evaluation, 5 transcribe. A finished stage is skipped
# when re-run (delete its output to redo it).
set -euo pipefail
exp_dir=exp/demo
stage=1
stop_stage=5
while [ $# -gt 0 ]; do
  case "$1" in
    --exp-dir) exp_dir=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1 (expected --exp-dir, --stage, --stop-stage)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/../.."
source recipes/common.sh
data=$exp_dir/data

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f "$data/test.jsonl" ]; then echo "stage 1: $data exists, skipped"; else
    echo "stage 1: synthesising the demo corpus into $data"
    python recipes/demo/prepare.py --out-dir "$data"
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  train_model demo "$exp_dir" "$data"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "stage 3: test set (voices never heard in training)"
  evaluate_split "$exp_dir/best.pt" "$data/test.jsonl" "$exp_dir/test_wer.txt" "$exp_dir/test_report.json"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "stage 4: word 3-gram LM from the training transcripts; beam search on the test set"
  [ -f "$exp_dir/lm.arpa" ] || asr-lm build --order 3 "$data/train.jsonl" "$exp_dir/lm.arpa"
  # LM weight and word score tuned on dev with: asr-lm tune --model $exp_dir/best.pt --manifest $data/dev.jsonl --lm $exp_dir/lm.arpa
  evaluate_split "$exp_dir/best.pt" "$data/test.jsonl" "$exp_dir/test_wer_beam.txt" "$exp_dir/test_report_beam.json" \
    --decoder beam --lm "$exp_dir/lm.arpa" --lm-weight 1.5 --word-score -1
  release_model "$exp_dir" test_greedy="$exp_dir/test_report.json" test_beam="$exp_dir/test_report_beam.json"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  echo "stage 5: transcribing two test files (beam search with the LM)"
  transcribe_sample "$data/test.jsonl" "$exp_dir/best.pt" --decoder beam --lm "$exp_dir/lm.arpa" --lm-weight 1.5 --word-score -1
fi
