# Sourced by the experiment scripts: run configs and the run records kept in the repository.

# The `name` of a run config.
cfg_name() { sed -n 's/^name = "\(.*\)"/\1/p' "$1"; }

# True when run directory $1 holds a finished run: a progress line for every round of its config,
# or a last round where a stopping criterion of its `stop_on` stopped it.
run_finished() {
    [ -f "$1/config.toml" ] && [ -f "$1/progress.jsonl" ] || return 1
    tail -n 1 "$1/progress.jsonl" | grep -q '"stopped":true' && return 0
    local want=$(( $(sed -n 's/^rounds = //p' "$1/config.toml") + 1 ))
    [ "$(wc -l < "$1/progress.jsonl")" -ge "$want" ]
}

# Copy a run's record (not its features or checkpoints) from run directory $1 to $2.
keep_record() {
    mkdir -p "$2"
    for f in config.toml rounds.jsonl progress.jsonl ledger.jsonl labelled.jsonl; do
        cp "$1/$f" "$2/$f"
    done
}
