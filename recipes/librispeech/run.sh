#!/usr/bin/env bash
# LibriSpeech (OpenSLR 12): the 100 h (train-clean-100) or 960 h (all training subsets)
# setup, dev-clean for model selection, test-clean and test-other for the results.
#
#   bash recipes/librispeech/run.sh [--corpus-dir DIR] [--exp-dir exp/librispeech_100] [--setup 100|960] \
#       [--stage 0] [--stop-stage 4] [-- KEY=VALUE ...]
#
# Stages: 0 download the subsets the setup needs (only without --corpus-dir; sha256
# verified, resumable), 1 prepare manifests, 2 train, 3 evaluate dev-clean, test-clean and
# test-other, 4 transcribe two test files. A finished stage is skipped when re-run.
# --corpus-dir is the LibriSpeech folder holding the subset folders. Arguments after `--`
# are passed to asr-train as Hydra overrides. Training 100 h wants a GPU.
set -euo pipefail
corpus_dir=""
exp_dir=""
setup=100
stage=0
stop_stage=4
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    --exp-dir) exp_dir=$2; shift 2 ;;
    --setup) setup=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run.sh: unknown option $1 (expected --corpus-dir, --exp-dir, --setup, --stage, --stop-stage," \
            "-- overrides)" >&2; exit 2 ;;
  esac
done
case "$setup" in
  100) train_subsets=train-clean-100 ;;
  960) train_subsets=train-clean-100,train-clean-360,train-other-500 ;;
  *) echo "run.sh: --setup $setup: expected 100 or 960" >&2; exit 2 ;;
esac
[ -z "$exp_dir" ] && exp_dir=exp/librispeech_$setup
[ -n "$corpus_dir" ] && corpus_dir=$(realpath -m "$corpus_dir")
exp_dir=$(realpath -m "$exp_dir")
cd "$(dirname "$0")/../.."
source recipes/common.sh
data=$exp_dir/data

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ] && [ -z "$corpus_dir" ]; then
  echo "stage 0: downloading $train_subsets,dev-clean,test-clean,test-other into $exp_dir/download"
  asr-prepare download librispeech "$exp_dir/download" --subsets "$train_subsets,dev-clean,test-clean,test-other"
fi
[ -z "$corpus_dir" ] && corpus_dir=$exp_dir/download/LibriSpeech

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f "$data/test.jsonl" ] && [ -f "$data/test-other.jsonl" ]; then echo "stage 1: $data exists, skipped"; else
    echo "stage 1: manifests for $train_subsets, dev-clean, test-clean, test-other into $data"
    asr-prepare librispeech "$corpus_dir" "$data" --train-subsets "$train_subsets" --extra-subsets test-other
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  train_model "librispeech_$setup" "$exp_dir" "$data" "$@"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for split in dev test test-other; do
    echo -n "stage 3: "
    evaluate_split "$exp_dir/best.pt" "$data/$split.jsonl" "$exp_dir/${split}_wer.txt" "$exp_dir/${split}_report.json"
  done
  release_model "$exp_dir" test_clean="$exp_dir/test_report.json" test_other="$exp_dir/test-other_report.json"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "stage 4: transcribing two test-clean files"
  transcribe_sample "$data/test.jsonl" "$exp_dir/best.pt"
fi
