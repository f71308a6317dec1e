#!/usr/bin/env bash
# `make plan-alignment`: experiments/results/plan-alignment.md. The alignment-check runs
# (asvp-auto-cache, asvp-auto-random) were made with a faster fine-tune than the suite's fixed
# schedule and standard runs, so their wall seconds are not comparable. This projects the fixed
# schedule and standard AL with `proxal plan` at the rates the check runs' own ledgers measured
# (same binary, same machine), for a like-for-like compute comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${PROXAL_BIN:-target/debug/proxal}
out=experiments/results/plan-alignment.md
{
    echo "# The fixed schedule and standard AL at the alignment-check runs' speed"
    echo
    echo "Written by \`make plan-alignment\` ($(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg))."
    echo "For each suite dataset, \`proxal plan\` projects every policy's compute on the suite's setting"
    echo "(3,000 pool rows, 1,000 labels in batches of 200, a linear probe shipped) at the rates measured"
    echo "by the ledgers of its asvp-auto-cache and asvp-auto-random runs: the binary and machine those"
    echo "runs used, so the projected asvp (fixed schedule, aligning every 2 rounds) and standard rows are"
    echo "comparable with their compute in \`alignment-triggers.md\`."
    for ds in assistant-source banking77 clinc150 stackoverflow20; do
        test_rows=1000
        [ "$ds" = assistant-source ] && test_rows=894
        echo
        echo "## $ds"
        echo
        # shellcheck disable=SC2046
        $B plan --pool 3000 --test "$test_rows" --labels 1000 --batch 200 \
            --rates-from $(ls -d experiments/results/suite-runs/suite-$ds-asvp-auto-cache-margin-s* experiments/results/suite-runs/suite-$ds-asvp-auto-random-margin-s*) \
            | sed '/^saving over standard/,$d'
    done
} > "$out"
echo "wrote $out"
