# Sourced by the benchmark scripts (bench-select.sh, bench-ann.sh): when and under what load a
# measurement ran.

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# stamp LINE LOAD_BEFORE: the JSON line with the date, the load averages and the threads added.
stamp() {
    python3 -c '
import datetime, json, os, sys
d = json.loads(sys.argv[1])
d["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
d["load_average_before"] = [float(x) for x in sys.argv[2].split()]
d["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
d["threads"] = os.cpu_count()
try:
    d["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except Exception:
    pass
d["rayon_num_threads"] = os.environ.get("RAYON_NUM_THREADS", "unset")
print(json.dumps(d))' "$1" "$2"
}
