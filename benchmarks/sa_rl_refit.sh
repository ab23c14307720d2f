#!/bin/bash
# Issue 17, item 5: is "broken by SA-RL" a property of the agent or of one attack fit? Fits SA-RL
# again on a copy of each given run directory (the study's own run and its cached adversary are
# never touched), once per seed, at the study's budget and eps, and writes <copy>.json per fit.
#   bash benchmarks/sa_rl_refit.sh OUT_DIR EPS "SEEDS" RUN_DIR...
#   bash benchmarks/sa_rl_refit.sh /tmp/refit 0.075 "10001 10002" runs/studies/barpo_reliability/runs/bar-ppo-k1-Hopper-v5-s3-*
set -euo pipefail
out=$1; eps=$2; seeds=$3; shift 3
ROBUSTRL=${ROBUSTRL:-robustrl}
mkdir -p "$out"
for seed in $seeds; do
  for run in "$@"; do
    copy="$out/$(basename "$run")-seed$seed"
    [ -f "$copy.json" ] && continue  # done earlier: the script resumes
    rm -rf "$copy" && cp -r "$run" "$copy"
    "$ROBUSTRL" evaluate "$copy" --attacks sa-rl --eps "$eps" --episodes 20 --seed "$seed" \
      --budget sa-rl=1000000 --refit --json "$copy.json"
  done
done
