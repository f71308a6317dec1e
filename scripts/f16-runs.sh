#!/usr/bin/env bash
# f16 vs f32 feature versions on real data: banking77 and clinc150 full pools, svpp (margin,
# badge), seeds 0-2, the same configs as experiments/configs/full, run with one binary in one
# session: f32 in the main home (its f32 v0), f16 in a home whose v0 is embedded with --dtype f16
# and the f32 v0's truncation length.
# Resumable: a pair member whose record (with run.json) is committed is skipped. Then
# `python3 scripts/f16-report.py` writes experiments/results/f16.{md,json}.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
ROOT=$(pwd)
B=${PROXAL_BIN:-target/debug/proxal}
H=${F16_HOME:-$ROOT/target/f16home}
OUT=experiments/results/f16-runs
LOG=experiments/runs/f16.log
DATASETS=${F16_DATASETS:-"banking77 clinc150"}
mkdir -p $H/datasets $H/cfg $H/cfg32 $OUT experiments/runs
ln -sfn $ROOT/assets $H/assets
for ds in $DATASETS; do
  [ -f datasets/$ds/meta.json ] || $B data import-builtin $ds >> $LOG 2>&1 || exit 1
  ln -sfn $ROOT/datasets/$ds $H/datasets/$ds
  if [ ! -f features/$ds/v0/manifest.json ]; then
    $B embed --data $ds --max-len 64 --quiet >> $LOG 2>&1 || exit 1   # the full configs' embed_max_len
  fi
  max_len=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['source']['max_len'])" features/$ds/v0/manifest.json)
  if ! grep -q '"complete": true' $H/features/$ds/v0/manifest.json 2>/dev/null; then
    t0=$(date +%s)
    PROXAL_HOME=$H $B embed --data $ds --dtype f16 --max-len $max_len --quiet >> $LOG 2>&1 || exit 1
    echo "$(date -u +%FT%TZ) embedded the f16 v0 of $ds ($max_len tokens) in $(( $(date +%s) - t0 )) s" >> $LOG
  fi
done
for s in 0 1 2; do
 for ds in $DATASETS; do
  for strat in margin badge; do
    src=experiments/configs/full/$ds/svpp-$strat-s$s.toml
    for dt in f32 f16; do
      name=$dt-$ds-svpp-$strat-s$s
      [ -f $OUT/$name/run.json ] && continue
      if [ $dt = f16 ]; then home=$H; cfg=$H/cfg/$name.toml; else home=$ROOT; cfg=$H/cfg32/$name.toml; fi
      sed "s/^name = .*/name = \"$name\"/" $src > $cfg
      start=$(date +%s); started=$(date -u +%FT%TZ); load=$(cut -d' ' -f1-3 /proc/loadavg)
      echo "$started start $name (load $load)" >> $LOG
      if PROXAL_HOME=$home $B run $cfg --quiet >> $LOG 2>&1; then
        keep_record $home/experiments/runs/$name $OUT/$name
        printf '{"started":"%s","wall_seconds":%d,"loadavg_at_start":"%s","cores":%d,"feature_dtype":"%s"}\n' \
          "$started" "$(( $(date +%s) - start ))" "$load" "$(nproc)" "$dt" > $OUT/$name/run.json
        echo "$(date -u +%FT%TZ) done $name" >> $LOG
        commit_record $OUT/$name "f16 experiment: $name"
      else
        echo "$(date -u +%FT%TZ) FAILED $name" >> $LOG
      fi
    done
  done
 done
done
