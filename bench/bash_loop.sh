#!/usr/bin/env bash
# The research protocol in plain bash: the peer that bench/overhead.py measures autoresearch against.
# usage: bench/bash_loop.sh REPO ITERATIONS [TIMEOUT_SECONDS]    (PYTHON: the interpreter, default python3)
# Per iteration: edit train.py, commit, train under a hard timeout with all output to the log, grep the
# metric, append a results.tsv row, keep (branch advances) or reset to the last keep. Each run's log is
# kept as .bashlogs/NNNN.log (bench/overhead.py reads the training seconds each run reports).
set -euo pipefail
repo=$1 iterations=$2 limit=${3:-600} python=${PYTHON:-python3}
cd "$repo"
git checkout -q -b autoresearch/bash
mkdir -p .bashlogs
printf 'commit\tval_bpb\tmemory_gb\tstatus\tdescription\n' > results.tsv
best=""
for ((i = 0; i <= iterations; i++)); do
  desc=baseline
  if ((i > 0)); then
    desc="SEED $i"
    sed -i "s/^SEED = .*/SEED = $i/" train.py
    git commit -q -m "experiment: $desc" train.py
  fi
  commit=$(git rev-parse --short=7 HEAD)
  log=$(printf '.bashlogs/%04d.log' "$i")
  timeout -s KILL "$limit" "$python" train.py > "$log" 2>&1 || true
  val=$(awk '/^val_bpb:/ {print $2}' "$log")
  mem=$(awk '/^peak_vram_mb:/ {printf "%.1f", $2 / 1024}' "$log")
  if [[ -z "$val" ]]; then
    status=crash val=0.000000 mem=0.0
  elif [[ -z "$best" ]] || awk -v new="$val" -v best="$best" 'BEGIN { exit !(new < best - 0.001) }'; then
    status=keep best=$val
  else
    status=discard
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$commit" "$val" "${mem:-0.0}" "$status" "$desc" >> results.tsv
  if [[ $status != keep ]]; then git reset -q --hard HEAD~1; fi
done
