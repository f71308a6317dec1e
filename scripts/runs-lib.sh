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

# Run config $2 with proxal binary $1 unless its record $3 is finished, logging start and end
# (with the load average) to $4, and keep its record in $3. Fails when the run fails.
run_and_keep() {
    local bin=$1 cfg=$2 keep=$3 log=$4 name start started load
    run_finished "$keep" && return 0   # finished earlier: its record is committed
    name=$(cfg_name "$cfg")
    start=$(date +%s)
    started=$(date -u +%FT%TZ)
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "$started start $cfg (load ${load%% *})" | tee -a "$log"
    if $bin run "$cfg" --quiet >> "$log" 2>&1; then
        echo "$(date -u +%FT%TZ) done  $cfg in $(( $(date +%s) - start )) s" | tee -a "$log"
        keep_record "experiments/runs/$name" "$keep"
        # When and under what load it ran (kept with the record, committed).
        printf '{"started":"%s","wall_seconds":%d,"loadavg_at_start":"%s","cores":%d}\n' \
            "$started" "$(( $(date +%s) - start ))" "$load" "$(nproc)" > "$keep/run.json"
    else
        echo "$(date -u +%FT%TZ) FAILED $cfg (see $log)" | tee -a "$log"
        return 1
    fi
}

# Commit run record $1 with message $2, retrying twice (another experiment may hold git's lock).
commit_record() {
    local i
    for i in 1 2 3; do
        git add "$1" && git commit -q -m "$2" -- "$1" && return 0
        sleep 5
    done
    return 1
}
