#!/usr/bin/env bash
# `make reproduce-check`: rerun suite configs from scratch in a scratch home and compare them with
# their committed records (experiments/results/<suite>-runs/<name>/, the suite of
# experiments/configs/<suite>/: suite or full): the labelled rows picked in each
# round (must be identical) and the test accuracy at each evaluation point (must agree within
# REPRO_TOL, default 0.005). Writes experiments/results/reproduce.md; exits non-zero on a mismatch.
# REPRO_CONFIGS narrows or widens the set (config paths, space-separated); the default is six
# banking77 suite configs and one full-pool asvp run (full banking77, aligned at 400, 800 and 1,600
# labels: three fine-tunes and refreshes of the 13,083-row table). REPRO_OUT names the report.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/runs-lib.sh
B=$(realpath "${PROXAL_BIN:-target/debug/proxal}")
TOL=${REPRO_TOL:-0.005}
CONFIGS=${REPRO_CONFIGS:-"$(for g in random svpp-margin svpp-badge svpp-coreset asvp-margin standard-margin; do
    echo experiments/configs/suite/banking77/$g-s0.toml; done) experiments/configs/full/banking77/asvp-labels-margin-s0.toml"}
OUT=${REPRO_OUT:-experiments/results/reproduce.md}
HEAD_AT_START=$(git rev-parse --short HEAD)
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
failed=0
# The datasets, imported as `make experiments` (sampled) and `make experiments-full` (whole)
# import them (a fresh clone has none).
suite_of() { echo "$1" | sed -n 's#^experiments/configs/\([a-z]*\)/.*#\1#p'; }
for cfg in $CONFIGS; do
    ds=$(sed -n 's/^dataset = "\(.*\)"$/\1/p' "$cfg")
    [ -f "datasets/$ds/table.parquet" ] && continue
    case $(suite_of "$cfg") in
    suite) "$B" data import-builtin "${ds%-s}" --name "$ds" --sample-pool 3000 --sample-test 1000 --sample-seed 0 || exit 1 ;;
    full) "$B" data import-builtin "$ds" || exit 1 ;;
    *) echo "$cfg: not a suite or full-pool config" >&2; exit 1 ;;
    esac
done
for cfg in $CONFIGS; do
    name=$(cfg_name "$cfg")
    ref=experiments/results/$(suite_of "$cfg")-runs/$name
    [ -f "$ref/labelled.jsonl" ] || { echo "$cfg: no committed record under $ref" >&2; exit 1; }
    home=$(mktemp -d)
    # The scratch home shares the fetched assets, the imported datasets and the v0 feature caches
    # (read-only inputs); the run itself (proxy, selections, fine-tunes, refreshes) starts from zero.
    for d in assets datasets features; do ln -s "$PWD/$d" "$home/$d"; done
    start=$(date +%s)
    echo "$(date -u +%FT%TZ) rerun $cfg (load $(cut -d' ' -f1 /proc/loadavg))"
    if ! "$B" run "$cfg" --home "$home" --quiet; then
        echo "$cfg: the rerun failed" >&2; failed=1; rm -rf "$home"; continue
    fi
    secs=$(( $(date +%s) - start ))
    python3 - "$ref" "$home/experiments/runs/$name" "$TOL" "$cfg" "$secs" >> "$rows" <<'EOF' || failed=1
import json, sys
ref, new, tol, cfg, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
def picks(d):
    out = {}
    for line in open(f"{d}/labelled.jsonl"):
        r = json.loads(line)
        out.setdefault(r["round"], set()).add(r["row"])
    return out
def accs(d):
    return [json.loads(l)["test_accuracy"] for l in open(f"{d}/rounds.jsonl")]
pa, pb = picks(ref), picks(new)
differ = sum(len(pa.get(k, set()) ^ pb.get(k, set())) for k in set(pa) | set(pb)) // 2
aa, ab = accs(ref), accs(new)
same_len = len(aa) == len(ab)
delta = max(abs(x - y) for x, y in zip(aa, ab)) if same_len else float("inf")
ok = differ == 0 and same_len and delta <= tol
print(f"| `{cfg}` | {sum(map(len, pa.values()))} | {differ} | {' / '.join(f'{x:.3f}' for x in aa)} | "
      f"{' / '.join(f'{x:.3f}' for x in ab)} | {delta:.4f} | {secs} | {'yes' if ok else 'NO'} |")
sys.exit(0 if ok else 1)
EOF
    tail -1 "$rows"
    rm -rf "$home"
done
{
    echo "# Rerunning suite configs reproduces their committed records"
    echo
    echo "\`make reproduce-check\` (scripts/reproduce.sh) reran each config below from scratch, in a scratch"
    echo "home that shares only the fetched assets, the imported datasets and the v0 feature caches, and"
    echo "compared the rerun with the record committed under \`experiments/results/<suite>-runs/\`."
    echo "\"Rows differing\" counts labelled rows picked by one run and not the other (every round,"
    echo "the seed set included); accuracies must agree within $TOL. Run on $(date -u +%F), $(nproc) cores,"
    echo "proxal $HEAD_AT_START."
    echo
    echo "| config | labelled rows | rows differing | accuracy, committed | accuracy, rerun | max \\|Δ accuracy\\| | rerun (s) | reproduced |"
    echo "|---|---|---|---|---|---|---|---|"
    cat "$rows"
} > "$OUT"
echo "wrote $OUT"
exit $failed
