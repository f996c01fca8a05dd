# Stage bodies shared by the recipes' run.sh scripts. Source it from anywhere: it finds the
# repository from its own folder (the corpus recipes source it before they cd to the root).
_recipes=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The repository's .venv, when there is one, provides asr-train and the other commands.
if [ -x "$_recipes/../.venv/bin/asr-train" ]; then export PATH="$(dirname "$_recipes")/.venv/bin:$PATH"; fi

# one_math_thread: one OpenMP thread per process unless OMP_NUM_THREADS says otherwise (on a
# shared CPU, OpenMP threads that spin-wait for each other measured 3-5x slower than one).
one_math_thread() { export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}; }

# summarise_folds EXP_DIR FOLD...
#   The mean and range over EXP_DIR/fold-<FOLD> of each dev/test WER, printed and written
#   to EXP_DIR/folds.txt (recipes/folds.py).
summarise_folds() {
  local exp_dir=$1; shift
  "${PYTHON:-python3}" "$_recipes/folds.py" "$exp_dir" "$@" | tee "$exp_dir/folds.txt.tmp"
  mv "$exp_dir/folds.txt.tmp" "$exp_dir/folds.txt"
}

# train_model EXPERIMENT EXP_DIR DATA_DIR [HYDRA_OVERRIDES...]
#   asr-train on DATA_DIR/{train,dev}.jsonl into EXP_DIR; skipped once finished, resumed if interrupted.
#   $train_manifests, when set, replaces DATA_DIR/train.jsonl (comma-separated manifests).
train_model() {
  local experiment=$1 exp_dir=$2 data=$3; shift 3
  if [ -f "$exp_dir/best.pt" ] && [ -f "$exp_dir/.trained" ]; then
    echo "stage 2: $exp_dir/best.pt exists, skipped"; return
  fi
  echo "stage 2: training into $exp_dir"
  local start; start=$(date +%s)
  asr-train experiment="$experiment" exp_dir="$exp_dir" resume=true progress=false \
    "data.train_manifest='${train_manifests:-$data/train.jsonl}'" data.dev_manifest="$data/dev.jsonl" "$@"
  echo "training took $(( $(date +%s) - start )) s" | tee "$exp_dir/train_time.txt"
  touch "$exp_dir/.trained"
}

# evaluate_split MODEL MANIFEST OUT_TXT REPORT_JSON [DECODER_OPTIONS...]
#   asr-evaluate's summary line into OUT_TXT (atomically), and the manifest and options it was
#   taken with into OUT_TXT.args; skipped when OUT_TXT is newer than MODEL and was taken with
#   the same manifest and options (a rerun with another --lm-weight or --blank-penalty decodes again).
evaluate_split() {
  local model=$1 manifest=$2 out=$3 report=$4; shift 4
  local args="$manifest $*"
  if [ -f "$out" ] && [ "$out" -nt "$model" ] && [ "$(cat "$out.args" 2>/dev/null)" = "$args" ]; then
    echo "$(basename "$out" .txt): $(cat "$out") (done before, skipped)"; return
  fi
  asr-evaluate --model "$model" --manifest "$manifest" --report "$report" "$@" > "$out.tmp"
  mv "$out.tmp" "$out"
  echo "$args" > "$out.args.tmp" && mv "$out.args.tmp" "$out.args"
  echo "$(basename "$out" .txt): $(cat "$out")"
}

# release_model EXP_DIR [NAME=REPORT.json ...]
#   EXP_DIR/model.pt: best.pt's weights without optimizer state, with a model card (also
#   EXP_DIR/model.json) holding the training data, epochs, dev WER and the named reports' summaries.
release_model() {
  local exp_dir=$1; shift
  local reports=()
  for r in "$@"; do [ -f "${r#*=}" ] && reports+=(--report "$r"); done
  asr-export --model "$exp_dir/best.pt" --format state "$exp_dir/model.pt" "${reports[@]}"
}

# transcribe_sample MANIFEST MODEL [DECODER_OPTIONS...]
#   asr-transcribe the manifest's first two files, printing their references first.
transcribe_sample() {
  local manifest=$1 model=$2; shift 2
  local files
  mapfile -t files < <(python3 - "$manifest" <<'PY'
import json, os, sys
for line in open(sys.argv[1]).read().splitlines()[:2]:
    r = json.loads(line)
    print(os.path.join(os.path.dirname(sys.argv[1]), r["audio_filepath"]))
    print(f"  reference: {r['text']}", file=sys.stderr)
PY
)
  asr-transcribe "${files[@]}" --model "$model" "$@"
}
