#!/usr/bin/env bash
# `make bench-shards`: how embedding one version scales with shards on this machine, and whether
# a Slurm job array embeds at the one-process per-row time (issue 16's targets). banking77
# sampled to $ROWS_POOL pool + 500 test rows, MiniLM, 64 tokens, chunks of 100 rows:
#   one       one process, $(nproc) threads
#   local-N   N shard processes (`--shard i/N`) started together, nproc/N threads each (at least 1)
#   slurm-N   the same N shards as a Slurm job array (`--shard auto`) on a local one-node cluster
#             (scripts/slurm-local.sh; root, slurm-wlm and munge); skipped with a line if missing
# Every sharded version must equal the one-process version byte for byte. Per-row figures come
# from each version's cost.jsonl (wall and CPU seconds of every chunk) and from the wall time of
# the whole version. Writes experiments/results/bench-shards.{md,json} with the date, the load
# averages and the threads.
set -euo pipefail
cd "$(dirname "$0")/.."
me=bench-shards
. scripts/shards-lib.sh
ROWS_POOL=${ROWS_POOL:-10000}
SHARD_COUNTS=${SHARD_COUNTS:-"2 4"}
cores=$(nproc)
work=$(mktemp -d /tmp/proxal-shards.XXXXXX)
trap 'scripts/slurm-local.sh stop "$work/slurm" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
lines=$work/cases.jsonl
: > "$lines"
home() { sample_b77 "$work/$1" "$ROWS_POOL"; }  # a home holding the sampled table
now() { date +%s.%N; }
record() {  # case shards threads_each wall_seconds version_dir load_before
    python3 - "$@" >> "$lines" <<'PY'
import json, os, sys
case, shards, threads, wall, vdir, load = sys.argv[1:7]
recs = [json.loads(l) for l in open(os.path.join(vdir, "cost.jsonl")) if l.strip()]
rows = sum(r["rows"] for r in recs)
print(json.dumps({
    "case": case, "shards": int(shards), "threads_per_shard": int(threads),
    "wall_seconds": float(wall), "rows": rows,
    "chunk_wall_seconds": sum(r["wall_seconds"] for r in recs),
    "chunk_cpu_seconds": sum(r["cpu_seconds"] for r in recs),
    "load_before": [float(x) for x in load.split()],
    "load_after": [round(x, 2) for x in os.getloadavg()],
}))
PY
}
load() { cut -d' ' -f1-3 /proc/loadavg; }

home one
l=$(load); t0=$(now)
RAYON_NUM_THREADS=$cores CANDLE_NUM_THREADS=$cores "$B" --home "$work/one" "${EMBED[@]}" > /dev/null
record one 1 "$cores" "$(echo "$(now) - $t0" | bc)" "$work/one/features/b77/v0" "$l"
echo "bench-shards: one process done"

for n in $SHARD_COUNTS; do
    th=$(( cores / n )); [ "$th" -ge 1 ] || th=1
    home "local-$n"
    l=$(load); t0=$(now)
    pids=()
    for i in $(seq 0 $((n - 1))); do
        RAYON_NUM_THREADS=$th CANDLE_NUM_THREADS=$th "$B" --home "$work/local-$n" "${EMBED[@]}" --shard "$i/$n" > /dev/null &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    v=$work/local-$n/features/b77/v0
    record "local-$n" "$n" "$th" "$(echo "$(now) - $t0" | bc)" "$v" "$l"
    python3 scripts/same-version.py "$work/one/features/b77/v0" "$v" > /dev/null
    echo "bench-shards: $n local shards done, identical to one process"
done

slurm_note=""
if command -v slurmctld > /dev/null && command -v munged > /dev/null && [ "$(id -u)" = 0 ]; then
    scripts/slurm-local.sh start "$work/slurm" > /dev/null
    export SLURM_CONF=$work/slurm/slurm.conf
    for n in $SHARD_COUNTS; do
        th=$(( cores / n )); [ "$th" -ge 1 ] || th=1
        home "slurm-$n"
        wrap="$B --home $work/slurm-$n ${EMBED[*]} --shard auto"
        l=$(load); t0=$(now)
        job=$(RAYON_NUM_THREADS=$th CANDLE_NUM_THREADS=$th sbatch --parsable --array=0-$((n - 1)) \
            --export="ALL,PROXAL_SHARD_COUNT=$n" --output="$work/slurm-$n-%a.out" --wrap "$wrap")
        wait_job "$job"
        v=$work/slurm-$n/features/b77/v0
        [ -f "$v/manifest.json" ] || { cat "$work"/slurm-$n-*.out >&2; fail "the Slurm array did not complete the version"; }
        record "slurm-$n" "$n" "$th" "$(echo "$(now) - $t0" | bc)" "$v" "$l"
        python3 scripts/same-version.py "$work/one/features/b77/v0" "$v" > /dev/null
        echo "bench-shards: Slurm array of $n done, identical to one process"
    done
else
    slurm_note="Slurm cases not run: slurm-wlm and munge are not installed or this is not root."
    echo "bench-shards: $slurm_note"
fi
SLURM_NOTE=$slurm_note python3 scripts/bench-shards-report.py "$lines" experiments/results/bench-shards.md experiments/results/bench-shards.json
cat experiments/results/bench-shards.md
