#!/usr/bin/env bash
# Connected-digit recognition on the Free Spoken Digit Dataset (FSDD): utterances of 1-7
# digits are built from one speaker's isolated recordings, with random pauses and gain,
# at 16 kHz. Dev and test speakers are never heard in training.
#
#   bash recipes/digits/run.sh [--corpus-dir DIR] [--exp-dir exp/digits] [--stage 0] [--stop-stage 4]
#       [--synthetic 3000] [--trim-prob 0.3] [--extra-train PATH] [--folds] [-- KEY=VALUE ...]
#
# --folds: leave-one-speaker-out cross-validation. Each real speaker of the corpus is held
# out in turn (dev: its even-numbered recordings, test: its odd ones) and the whole recipe
# runs into <exp-dir>/fold-<speaker>; then the mean and range over the held-out speakers of
# each dev/test WER are printed and written to <exp-dir>/folds.txt. Choose settings on the
# dev mean; report the test mean.
#
# --trim-prob P cuts that share of the training digits tight (15-30 dB below their peak),
# as an aggressive endpointer would; dev and test recordings are never cut.
# --synthetic N adds N eSpeak NG digit strings with random voices to training (0: none);
# --extra-train adds other real speech to training: a manifest, or a Kaldi data directory
# (e.g. speechocean762's train/, prepared into <exp-dir>/data/extra.jsonl).
#
# Stages: 0 download FSDD v1.0.10 (only without --corpus-dir; verified), 1 prepare
# manifests, 2 train, 3 evaluate dev and test (greedy, and beam search over the ten digit
# words), 4 transcribe two test files. A finished
# stage is skipped when re-run (delete its output to redo it). Arguments after `--` are
# passed to asr-train as Hydra overrides (e.g. -- epochs=20 model.hidden_size=256).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
corpus_dir=""
exp_dir=exp/digits
stage=0
stop_stage=4
dev_speakers=yweweler
test_speakers=yweweler
synthetic=3000
trim_prob=0.3
extra_train=""
folds=false
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    --exp-dir) exp_dir=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --dev-speakers) dev_speakers=$2; shift 2 ;;
    --test-speakers) test_speakers=$2; shift 2 ;;
    --synthetic) synthetic=$2; shift 2 ;;
    --trim-prob) trim_prob=$2; shift 2 ;;
    --extra-train) extra_train=$2; shift 2 ;;
    --folds) folds=true; shift ;;
    --) shift; break ;;
    *) echo "run.sh: unknown option $1 (expected --corpus-dir, --exp-dir, --stage, --stop-stage," \
            "--dev-speakers, --test-speakers, --synthetic, --trim-prob, --extra-train, --folds, -- overrides)" >&2
       exit 2 ;;
  esac
done
if $folds; then
  [ -n "$corpus_dir" ] || { echo "run.sh: --folds needs --corpus-dir (the speakers are read from it)" >&2; exit 2; }
  here=$(dirname "$0")
  mapfile -t speakers < <(ls "$corpus_dir"/recordings 2>/dev/null \
    | sed -n 's/^[0-9]_\([a-z]*\)_[0-9]*\.wav$/\1/p' | sort -u)
  [ ${#speakers[@]} -ge 2 ] || { echo "run.sh: error: no FSDD speakers found in $corpus_dir/recordings" >&2; exit 2; }
  rest=()  # the arguments without --folds and --exp-dir, passed to each fold
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in --folds) ;; --exp-dir) i=$((i + 1)) ;; *) rest+=("${args[i]}") ;; esac
  done
  for spk in "${speakers[@]}"; do
    echo "=== fold: $spk held out (${speakers[*]})"
    bash "$here/run.sh" --exp-dir "$exp_dir/fold-$spk" --dev-speakers "$spk" --test-speakers "$spk" "${rest[@]}"
  done
  summarise_folds "$exp_dir" "${speakers[@]}"
  exit 0
fi
# Paths are taken relative to where run.sh was started; then work from the repository root.
[ -n "$corpus_dir" ] && corpus_dir=$(realpath -m "$corpus_dir")
[ -n "$extra_train" ] && extra_train=$(realpath -m "$extra_train")
exp_dir=$(realpath -m "$exp_dir")
cd "$(dirname "$0")/../.."
one_math_thread
data=$exp_dir/data

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ] && [ -z "$corpus_dir" ]; then
  echo "stage 0: downloading FSDD v1.0.10 into $exp_dir/download"
  asr-prepare download fsdd "$exp_dir/download"
fi
[ -z "$corpus_dir" ] && corpus_dir=$exp_dir/download/free-spoken-digit-dataset-1.0.10

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f "$data/test.jsonl" ]; then echo "stage 1: $data exists, skipped"; else
    echo "stage 1: building connected-digit utterances from $corpus_dir into $data"
    asr-prepare digits "$corpus_dir" "$data" --dev-speakers "$dev_speakers" --test-speakers "$test_speakers" \
      --synthetic "$synthetic" --trim-prob "$trim_prob"
  fi
  if [ -d "$extra_train" ] && [ ! -f "$data/extra.jsonl" ]; then
    echo "stage 1: preparing the Kaldi data directory $extra_train as extra training data"
    asr-prepare kaldi "$extra_train" "$data/extra.jsonl"
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  train_manifests=$data/train.jsonl
  [ -f "$data/synthetic.jsonl" ] && train_manifests+=",$data/synthetic.jsonl"
  if [ -d "$extra_train" ]; then train_manifests+=",$data/extra.jsonl"
  elif [ -n "$extra_train" ]; then train_manifests+=",$extra_train"; fi
  train_model digits "$exp_dir" "$data" "$@"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  # Greedy decoding, then beam search constrained to the ten digit words (the lexicon).
  [ -f "$data/lexicon.txt" ] || printf '%s\n' zero one two three four five six seven eight nine > "$data/lexicon.txt"
  for split in dev test; do
    for decoding in greedy lexicon; do
      opts=()
      [ "$decoding" = lexicon ] && opts=(--decoder beam --lexicon "$data/lexicon.txt")
      echo -n "stage 3: $split ($(sed -n 1p "$data/$split.jsonl" | grep -o '"speaker": "[^"]*"'), never heard in training) "
      evaluate_split "$exp_dir/best.pt" "$data/$split.jsonl" "$exp_dir/${split}_wer_$decoding.txt" \
        "$exp_dir/${split}_report_$decoding.json" "${opts[@]}"
    done
  done
  release_model "$exp_dir" test_greedy="$exp_dir/test_report_greedy.json" test_lexicon="$exp_dir/test_report_lexicon.json"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "stage 4: transcribing two test files"
  transcribe_sample "$data/test.jsonl" "$exp_dir/best.pt" --decoder beam --lexicon "$data/lexicon.txt"
fi
