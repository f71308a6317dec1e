#!/usr/bin/env bash
# `make test-slurm`: embed a dataset in 4 shards as a Slurm job array on a local single-node
# cluster (scripts/slurm-local.sh), kill one array task with SIGKILL while it works, resubmit it
# alone, and require the finished version to equal a one-process embed byte for byte (chunk
# files and manifest). Prints the wall time of both; exits non-zero on any difference.
#
# Needs root and Debian's slurm-wlm and munge (apt-get install slurm-wlm munge), the fetched
# MiniLM (make assets) and a built proxal (PROXAL_BIN, default target/debug/proxal).
set -euo pipefail
cd "$(dirname "$0")/.."
me=test-slurm
. scripts/shards-lib.sh
work=$(mktemp -d /tmp/proxal-slurm.XXXXXX)
trap 'scripts/slurm-local.sh stop "$work/slurm" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
scripts/slurm-local.sh start "$work/slurm"
export SLURM_CONF=$work/slurm/slurm.conf
SHARDS=4
ROWS_POOL=3500
for h in one sharded; do
    sample_b77 "$work/$h" "$ROWS_POOL"
done
t0=$(date +%s.%N)
"$B" --home "$work/one" "${EMBED[@]}" > /dev/null
t_one=$(echo "$(date +%s.%N) - $t0" | bc)
echo "test-slurm: one process embedded $((ROWS_POOL + 500)) rows in ${t_one} s"

wrap="$B --home $work/sharded ${EMBED[*]} --shard auto"
v0=$work/sharded/features/b77/v0
t0=$(date +%s.%N)
job=$(sbatch --parsable --array=0-$((SHARDS - 1)) --export="ALL,PROXAL_SHARD_COUNT=$SHARDS" \
    --output="$work/shard-%a.out" --wrap "$wrap")
echo "test-slurm: submitted job array $job (${SHARDS} tasks)"
# Kill task 2 once one of its chunks is durable and its range is not done.
killed=
for _ in $(seq 1 1200); do
    rec=$v0/shards/2-of-$SHARDS.json
    if [ -f "$rec" ] && python3 - "$rec" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["version"]["chunks"] and not r["version"]["complete"] else 1)
PY
    then
        scancel --signal=KILL "${job}_2" && killed=1
        break
    fi
    sleep 0.1
done
[ -n "$killed" ] || fail "array task 2 was never caught mid-work"
wait_job "$job"
status=$("$B" --home "$work/sharded" embed --data b77 --status)
echo "$status" | grep -q "shard 2: .*(missing)" || fail "after the kill, shard 2 is not missing: $status"
echo "$status" | grep -q "not all done" || fail "after the kill, the version is assembled: $status"
[ ! -f "$v0/manifest.json" ] || fail "a manifest exists with shard 2 killed"
echo "test-slurm: task 2 killed mid-work; --status: $(echo "$status" | grep 'shard 2')"
again=$(sbatch --parsable --array=2 --export="ALL,PROXAL_SHARD_COUNT=$SHARDS" \
    --output="$work/shard-2-again.out" --wrap "$wrap")
wait_job "$again"
t_sharded=$(echo "$(date +%s.%N) - $t0" | bc)
out=$(cat "$work/shard-2-again.out")
echo "$out" | grep -q "resumed after [1-9]" || fail "the resubmitted task did not resume: $out"
echo "$out" | grep -q "all $SHARDS shards are" || fail "the resubmitted task did not complete the version: $out"
echo "test-slurm: resubmitted task 2: $(echo "$out" | tr '\n' ' ')"
same=$(python3 scripts/same-version.py "$work/one/features/b77/v0" "$v0") \
    || fail "the sharded version differs from the one-process version"
echo "test-slurm: $same"
echo "test-slurm: one process ${t_one} s; ${SHARDS} array tasks on $(nproc) cores, kill and resubmit included, ${t_sharded} s"
echo "test-slurm: passed"
