#!/usr/bin/env bash
# Train the shipped reconstruct/fuse models side by side on one GPU (an H100 here), about 8 minutes in all:
#   v2v, vqvae, fusion   train_shipped.py --recipe gpu   (7 minutes of training each; MODELS="vqvae fusion"
#                        trains only those)
# With DIGITS=1 also the built-in generator (train_digits.py --recipe gpu: tokenizer 2 min, generator what
# is left of 7.5; the shipped one was trained on a CPU, see train_digits.py).
# Scoring and shipping need no GPU; afterwards, on any machine:
#   python -m recipes.train_shipped --model v2v --weights OUT/v2v.safetensors    (likewise vqvae, fusion)
#   python -m recipes.train_digits --weights OUT/digits-vq.safetensors OUT/digits-gpt.safetensors
# Usage: bash benchmarks/gpu_session.sh [OUT]   (default benchmarks/_runs/gpu-session)
# Extra arguments after OUT go to every training, e.g. `--device cpu --minutes 0.2` for a dry run.
# Each run's weights land in OUT the moment it ends; progress is printed every minute; logs, configs and
# metrics end in OUT/runs.tar.gz. A watchdog interrupts whatever still runs after DEADLINE seconds (default
# 500): the trainers save on interruption, so the session always ends in time with the best weights so far.
# The device tool sends at most 64 MiB (tracked files + what is carried): with av's files (.whl/site.tar.xz,
# 24.7 MB) and benchmarks/_runs/footage-shipped + benchmarks/_cache/*.mp4 carried, the tracked generator
# weights (weights/video-gpt.digits.safetensors, 20.7 MB, not needed here) had to stay behind on 2026-11-26:
# `git rm --cached` it and list it in .git/info/exclude for the call, `git reset -q -- FILE` and drop the line after.
set -u -m  # -m: each job is its own process group, so the watchdog reaches the trainers under it
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/_runs/gpu-session}
shift || true
runs=$here/_runs
deadline=${DEADLINE:-500}
logs=$runs/logs
mkdir -p "$out" "$logs"
export PYTHONUNBUFFERED=1
say() { echo "[$(date +%T)] $*"; }
keep() {  # RUN_DIR NAME: the run's best weights (its last, if it never validated) as OUT/NAME.safetensors
  cp "$1/best.safetensors" "$out/$2.safetensors" 2>/dev/null || cp "$1/last.safetensors" "$out/$2.safetensors"
}

python "$here/train_shipped.py" --model v2v --footage-only  # made once, before the runs share it
jobs_started=()
for model in ${MODELS:-v2v vqvae fusion}; do
  (python "$here/train_shipped.py" --model "$model" --recipe gpu --no-eval --no-ship "$@" >"$logs/$model.log" 2>&1
   status=$?; keep "$runs/shipped-$model" "$model"; say "$model ended ($status)") &
  jobs_started+=($!)
done
if [ "${DIGITS:-0}" = 1 ]; then
  (python "$here/train_digits.py" --recipe gpu --no-eval --no-ship "$@" >"$logs/digits.log" 2>&1
   status=$?; keep "$runs/digits/run-vq" digits-vq; keep "$runs/digits/run-gpt" digits-gpt
   say "digits ended ($status)") &
  jobs_started+=($!)
fi

# SIGINT reaches the trainers alone (a trainer saves, then exits); their wrappers then keep the weights.
(sleep "$deadline"; say "deadline: interrupting the trainers still running"; pkill -INT -f -- "vidgen train .*--out $runs/"
 sleep 45; for group in "${jobs_started[@]}"; do kill -KILL -- "-$group" 2>/dev/null; done) &
watchdog=$!
(while sleep 60; do
   for metrics in "$runs"/shipped-*/metrics.jsonl "$runs"/digits/run-*/metrics.jsonl; do
     [ -f "$metrics" ] && say "$metrics: $(grep '"loss"' "$metrics" | tail -n 1)"
   done
 done) &
progress=$!

status=0
for job in "${jobs_started[@]}"; do wait "$job" || status=1; done
kill "$watchdog" "$progress" 2>/dev/null
(cd "$runs" && tar -czf "$out/runs.tar.gz" logs shipped-*/metrics.jsonl shipped-*/config.toml \
  $(ls -d digits/run-*/metrics.jsonl digits/run-*/config.toml 2>/dev/null)) || status=1
ls -la "$out"
exit $status
