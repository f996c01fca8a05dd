#!/usr/bin/env bash
# speechocean762 (OpenSLR 101): read English from 250 Mandarin-speaking children and
# adults, as a Kaldi data directory. Trains on the train split's speakers; the dev speakers
# (10% of them) are never heard in training. With the full corpus, the test split is the
# corpus's own test speakers; with a train-only copy, another 10% of the train speakers.
#
#   bash recipes/speechocean762/run.sh [--corpus-dir DIR] [--exp-dir exp/speechocean762] \
#       [--stage 0] [--stop-stage 4] [--folds K] [--synthetic 2] [--lm-weight 1.5] [--word-score -1] \
#       [--blank-penalty 3] \
#       [-- KEY=VALUE ...]
#
# --folds K: speaker cross-validation for choosing settings. The test speakers stay those
# of the plain split (a final test set no choice looks at); the other speakers are dealt
# into K folds (asr-prepare split --folds K --fold I) and the whole recipe runs K times into
# <exp-dir>/fold-<I>, fold I's speakers as dev. Then the mean and range over the folds of
# each WER are printed and written to <exp-dir>/folds.txt. Choose on the dev mean.
#
# Stages: 0 download the corpus (only without --corpus-dir; verified), 1 prepare manifests
# (asr-prepare kaldi + a speaker split), 2 train, 3 evaluate dev and test (greedy, and beam
# search with a word 3-gram of the training transcripts; each also on the sentences that
# never occur in training, recipes/unseen.py), 4 transcribe two test files.
# --synthetic N: stage 1 also speaks each training transcript in N random eSpeak NG voices
# (asr-prepare synthetic, offline; 4,040 utterances, 2.13 h for the default 2) into
# <exp-dir>/data/synthetic<N>.jsonl, and stage 2 trains on them beside the real speech
# (0: real speech only, about 35% less training time; see the README's comparison).
# --lm-weight/--word-score/--blank-penalty: stage 3's 3-gram decoding (asr-evaluate's flags
# of those names; the penalty comes off every frame's blank log-probability). 1.5, -1 and 3
# were chosen together on dev for the default (128 subword units, --synthetic 2, 35
# epochs, two seeds; see the README); without a penalty that model wants 1.5 and 2. Real
# speech only wants --blank-penalty 0 --lm-weight 1 --word-score 1, a character model
# (`-- data.subwords=0`) --blank-penalty 0 --lm-weight 2 --word-score 1.
# A finished stage is skipped when re-run (delete its output to redo it); stage 3 decodes
# again when its decoding options (--lm-weight, --word-score, --blank-penalty) change.
# Arguments after `--` are passed to asr-train as Hydra overrides.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
corpus_dir=""
exp_dir=exp/speechocean762
stage=0
stop_stage=4
folds=0
fold=""
synthetic=2
lm_weight=1.5
word_score=-1
blank_penalty=3
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    --exp-dir) exp_dir=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --folds) folds=$2; shift 2 ;;
    --fold) fold=$2; shift 2 ;;  # internal: set by --folds for each fold's run
    --synthetic) synthetic=$2; shift 2 ;;
    --lm-weight) lm_weight=$2; shift 2 ;;
    --word-score) word_score=$2; shift 2 ;;
    --blank-penalty) blank_penalty=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run.sh: unknown option $1 (expected --corpus-dir, --exp-dir, --stage, --stop-stage, --folds, --synthetic, --lm-weight, --word-score, --blank-penalty, -- overrides)" >&2
       exit 2 ;;
  esac
done
[[ "$folds" =~ ^[0-9]+$ ]] || { echo "run.sh: error: --folds $folds: expected a number of folds (>= 2)" >&2; exit 2; }
[[ "$synthetic" =~ ^[0-9]+$ ]] || { echo "run.sh: error: --synthetic $synthetic: expected a number of voices per transcript (0: none)" >&2; exit 2; }
if [ "$folds" -gt 0 ] && [ -z "$fold" ]; then
  [ "$folds" -ge 2 ] || { echo "run.sh: error: --folds $folds: expected at least 2 folds" >&2; exit 2; }
  here=$(dirname "$0")
  rest=()  # the arguments without --folds K and --exp-dir, passed to each fold
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in --folds|--exp-dir) i=$((i + 1)) ;; *) rest+=("${args[i]}") ;; esac
  done
  for ((k = 0; k < folds; k++)); do
    echo "=== fold $k of $folds"
    bash "$here/run.sh" --exp-dir "$exp_dir/fold-$k" --folds "$folds" --fold "$k" "${rest[@]}"
  done
  summarise_folds "$exp_dir" $(seq 0 $((folds - 1)))
  exit 0
fi
fold_opts=()
[ -n "$fold" ] && fold_opts=(--folds "$folds" --fold "$fold")
[ -n "$corpus_dir" ] && corpus_dir=$(realpath -m "$corpus_dir")
exp_dir=$(realpath -m "$exp_dir")
cd "$(dirname "$0")/../.."
one_math_thread
data=$exp_dir/data

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ] && [ -z "$corpus_dir" ]; then
  echo "stage 0: downloading speechocean762 into $exp_dir/download"
  asr-prepare download speechocean762 "$exp_dir/download"
fi
[ -z "$corpus_dir" ] && corpus_dir=$exp_dir/download/speechocean762

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f "$data/test.jsonl" ]; then echo "stage 1: $data exists, skipped"; else
    echo "stage 1: Kaldi data directories under $corpus_dir -> manifests in $data"
    asr-prepare kaldi "$corpus_dir/train" "$data/corpus_train.jsonl"
    if [ -f "$corpus_dir/test/wav.scp" ]; then
      asr-prepare kaldi "$corpus_dir/test" "$data/corpus_test.jsonl"
      asr-prepare split "$data/corpus_train.jsonl" --train "$data/train.jsonl" --dev "$data/dev.jsonl" \
        --dev-speakers 0.1 --test-speakers 0 "${fold_opts[@]}"
      cp "$data/corpus_test.jsonl" "$data/.test.jsonl" && mv "$data/.test.jsonl" "$data/test.jsonl"
    else
      echo "no $corpus_dir/test: holding out 10% of the train speakers as the test set"
      asr-prepare split "$data/corpus_train.jsonl" --train "$data/train.jsonl" --dev "$data/dev.jsonl" \
        --test "$data/test.jsonl" --dev-speakers 0.1 --test-speakers 0.1 "${fold_opts[@]}"
    fi
  fi
  if [ "$synthetic" -gt 0 ] && [ ! -f "$data/synthetic$synthetic.jsonl" ]; then
    echo "stage 1: the training transcripts in $synthetic random eSpeak NG voices each -> $data/synthetic$synthetic.jsonl"
    asr-prepare synthetic "$data/train.jsonl" "$data" --name "synthetic$synthetic" --copies "$synthetic" --seed 0
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  if [ "$synthetic" -gt 0 ]; then
    train_manifests=${train_manifests:-$data/train.jsonl},$data/synthetic$synthetic.jsonl
    [ -f "$exp_dir/.trained" ] || [ -f "$data/synthetic$synthetic.jsonl" ] || {
      echo "run.sh: error: $data/synthetic$synthetic.jsonl: not prepared; run stage 1 with --synthetic $synthetic" \
           "(or train on real speech only with --synthetic 0)" >&2; exit 2; }
  fi
  train_model speechocean762 "$exp_dir" "$data" "$@"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  # Greedy decoding, then beam search with a word 3-gram LM of the training transcripts
  # (LM weight and word score chosen on dev for the default model; see the README).
  [ -f "$data/train_3gram.arpa" ] || asr-lm build "$data/train.jsonl" "$data/train_3gram.arpa" --order 3
  for split in dev test; do
    for decoding in greedy lm; do
      opts=()
      [ "$decoding" = lm ] && opts=(--decoder beam --lm "$data/train_3gram.arpa" --lm-weight "$lm_weight" --word-score "$word_score"
                                   --blank-penalty "$blank_penalty")
      echo -n "stage 3: $split (speakers never heard in training) "
      evaluate_split "$exp_dir/best.pt" "$data/$split.jsonl" "$exp_dir/${split}_wer_$decoding.txt" \
        "$exp_dir/${split}_report_$decoding.json" "${opts[@]}"
      # the prompts recur across speakers: the WER on sentences training never saw, apart
      python recipes/unseen.py "$exp_dir/${split}_report_$decoding.json" "$data/train.jsonl" | sed 's/^/    /'
    done
  done
  release_model "$exp_dir" test_greedy="$exp_dir/test_report_greedy.json" test_lm="$exp_dir/test_report_lm.json"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "stage 4: transcribing two test files"
  transcribe_sample "$data/test.jsonl" "$exp_dir/best.pt"
fi
