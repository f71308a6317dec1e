#!/usr/bin/env bash
# Run every config of an experiment (scripts/stopping.sh, scripts/longtail.sh): seed by seed
# (a config's seed is its file name's -sN suffix), resumable like the suite: a run whose record is
# in RECORDS/<name>/ is skipped, a killed one resumes at its last finished round.
# Usage: scripts/run-configs.sh CONFIG_DIR RECORDS_DIR LOG
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=${PROXAL_BIN:-target/debug/proxal}
configs=$1 records=$2 log=$3
mkdir -p "$(dirname "$log")"
failed=0
for seed in 0 1 2; do
    for cfg in "$configs"/*/*-s$seed.toml; do
        [ -f "$cfg" ] || continue
        run_and_keep "$B" "$cfg" "$records/$(cfg_name "$cfg")" "$log" || failed=1
    done
done
exit $failed
