# Sourced by test-slurm.sh and bench-shards.sh from the repository root, after they set `me` (their
# name, for messages): the proxal binary and the MiniLM they embed with, the embed command, the
# sampled banking77 table, and waiting for a Slurm job.
B=$(realpath "${PROXAL_BIN:-target/debug/proxal}")
PROXAL_ASSETS=$(realpath "${PROXAL_ASSETS:-assets}")
export PROXAL_ASSETS
M=$PROXAL_ASSETS/minilm
fail() { echo "$me: FAILED: $*" >&2; exit 1; }
[ -x "$B" ] || { echo "$me: no proxal at $B (cargo build first)" >&2; exit 1; }
[ -f "$M/model.safetensors" ] || { echo "$me: no MiniLM at $M (make assets first)" >&2; exit 1; }
EMBED=(embed --data b77 --model-dir "$M" --chunk-rows 100 --max-len 64 --quiet)

# sample_b77 HOME POOL_ROWS: banking77 sampled to POOL_ROWS pool and 500 test rows, as `b77`.
sample_b77() {
    "$B" --home "$1" data import-builtin banking77 --name b77 \
        --sample-pool "$2" --sample-test 500 --sample-seed 0 > /dev/null
}

# wait_job JOB: wait until the job (all its array tasks) has left the queue.
wait_job() {
    for _ in $(seq 1 1500); do
        [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
        sleep 0.2
    done
    fail "job $1 still queued after 300 s"
}
