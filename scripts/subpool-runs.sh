#!/usr/bin/env bash
# Subpooled against exhaustive BADGE and core-set on real data: clinc150's full pool, svpp, seeds
# 0-2, the same configs as experiments/configs/full (200 + 9 × 200 labels), once with
# `exhaustive:<strategy>` and once with `subpool:<strategy>` and a subpool of about 10-25× the
# batch: 1,000 random rows, the 2 nearest unlabelled rows of up to 2,000 labelled rows, the 5
# nearest of one labelled anchor per class and, for BADGE, the 2,000 lowest-margin rows (the pool
# has 18,000 rows; the defaults would hold all of it).
# Resumable: a run whose record (with run.json) is committed is skipped; each record is committed
# as its run finishes. Then `python3 scripts/subpool-report.py` writes
# experiments/results/subpool.{md,json}.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=${PROXAL_BIN:-target/debug/proxal}
OUT=experiments/results/subpool-runs
LOG=experiments/runs/subpool.log
CFG=target/subpool-cfg
DATASETS=${SUBPOOL_DATASETS:-clinc150}
mkdir -p $OUT $CFG experiments/runs
for ds in $DATASETS; do
  [ -f datasets/$ds/meta.json ] || $B data import-builtin $ds >> $LOG 2>&1 || exit 1
  if [ ! -f features/$ds/v0/manifest.json ] || ! grep -q '"complete": true' features/$ds/v0/manifest.json; then
    $B embed --data $ds --max-len 64 --quiet >> $LOG 2>&1 || exit 1   # the full configs' embed_max_len
  fi
done
for s in 0 1 2; do
 for ds in $DATASETS; do
  for strat in badge coreset; do
    src=experiments/configs/full/$ds/svpp-badge-s$s.toml
    for mode in exhaustive subpool; do
      name=subpool-$ds-svpp-$mode-$strat-s$s
      [ -f $OUT/$name/run.json ] && continue
      cfg=$CFG/$name.toml
      sed -e "s/^name = .*/name = \"$name\"/" -e "s/^strategy = .*/strategy = \"$mode:$strat\"/" $src > $cfg
      if [ $mode = subpool ]; then
        printf '\n[subpool]\nuncertain = 2000\ncoverage = 1000\nneighbours = 2\nmax_queries = 2000\nanchors = 1\nanchor_neighbours = 5\n' >> $cfg
      fi
      run_and_keep "$B" "$cfg" "$OUT/$name" "$LOG" || continue
      commit_record $OUT/$name "subpool experiment: $name"
    done
  done
 done
done
