#!/usr/bin/env python3
"""Validate the Kubernetes manifests in deploy/k8s/ against the API's own types, as the official
Python client (`kubernetes`, generated from the Kubernetes OpenAPI spec) defines them: every key
must be a field of its type (unknown or misspelt keys are errors, which `kubectl apply` would
reject), values must have the field's type, and required fields must be there (the client's
deserializer checks those). Then what proxal needs of a sharded Job: an Indexed Job whose pods
run `--shard auto` with PROXAL_SHARD_COUNT equal to its completions, restartPolicy Never, and the
home volume mounted.

    scripts/check-k8s.sh         (makes a venv with the pinned client, then runs this)
"""
import re
import sys
from pathlib import Path

import kubernetes
import yaml
from kubernetes import client

KINDS = {("batch/v1", "Job"): "V1Job", ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim"}
errors = []


def strict(value, type_name, where):
    """Every key of `value` is a field of `type_name`, recursively; scalar types match."""
    m = re.fullmatch(r"[lL]ist\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list")
            return
        for i, v in enumerate(value):
            strict(v, m.group(1), f"{where}[{i}]")
        return
    m = re.fullmatch(r"dict\((\w+), (.+)\)|Dict\[(\w+), (.+)\]", type_name)
    if m:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a map")
            return
        for k, v in value.items():
            strict(v, m.group(2) or m.group(4), f"{where}.{k}")
        return
    scalar = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
              "datetime": str, "date": str}
    if type_name in scalar:
        ok = isinstance(value, scalar[type_name]) and not (type_name == "int" and isinstance(value, bool))
        if not ok:
            errors.append(f"{where}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    cls = getattr(client, type_name, None)
    if cls is None:
        errors.append(f"{where}: unknown type {type_name}")
        return
    if not isinstance(value, dict):
        errors.append(f"{where}: expected a {type_name} object")
        return
    by_key = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for k, v in value.items():
        if k not in by_key:
            errors.append(f"{where}: unknown field '{k}' for {type_name}")
            continue
        strict(v, cls.openapi_types[by_key[k]], f"{where}.{k}")


def check_job(doc, where):
    spec = doc["spec"]
    pod = spec["template"]["spec"]
    if spec.get("completionMode") != "Indexed":
        errors.append(f"{where}: a sharded Job must be completionMode: Indexed")
    if pod.get("restartPolicy") != "Never":
        errors.append(f"{where}: restartPolicy must be Never (retries go through backoffLimitPerIndex)")
    for c in pod["containers"]:
        args = c.get("args", [])
        if "--shard" not in args or args[args.index("--shard") + 1] != "auto":
            errors.append(f"{where}: container {c['name']} does not run --shard auto")
        if "--version" not in args:
            errors.append(f"{where}: container {c['name']} does not name --version (every shard must write the same one)")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if env.get("PROXAL_SHARD_COUNT") != str(spec.get("completions")):
            errors.append(f"{where}: PROXAL_SHARD_COUNT {env.get('PROXAL_SHARD_COUNT')!r} is not "
                          f"the completions {spec.get('completions')!r}")
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"] for v in pod.get("volumes", [])}
        if not mounts or not mounts <= volumes:
            errors.append(f"{where}: container {c['name']} mounts {sorted(mounts)}, volumes are {sorted(volumes)}")


def main():
    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "deploy" / "k8s").glob("*.yaml"))
    if not files:
        sys.exit("check-k8s: no manifests under deploy/k8s/")
    api = client.ApiClient()
    # The checks can fail: a misspelt field and a wrong shard count in a copy of the first Job
    # must be reported (run every time, so that a client upgrade cannot silence them).
    job = next(d for f in files for d in yaml.safe_load_all(f.read_text()) if d and d["kind"] == "Job")
    job = yaml.safe_load(yaml.safe_dump(job))
    job["spec"]["completionMod"] = job["spec"].pop("completionMode")
    job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "999"
    strict(job, "V1Job", "self-test")
    check_job(job, "self-test")
    caught = [e for e in errors if e.startswith("self-test")]
    if not (any("unknown field 'completionMod'" in e for e in caught)
            and any("PROXAL_SHARD_COUNT '999'" in e for e in caught)):
        sys.exit(f"check-k8s: the self-test was not caught: {caught}")
    errors.clear()
    n = 0
    for f in files:
        for i, doc in enumerate(yaml.safe_load_all(f.read_text())):
            if doc is None:
                continue
            where = f"{f.relative_to(root)}#{i}"
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key not in KINDS:
                errors.append(f"{where}: unexpected {key}")
                continue
            strict(doc, KINDS[key], where)
            try:  # required fields and enum-free value checks, as the client deserializes
                api._ApiClient__deserialize(doc, KINDS[key])
            except (ValueError, TypeError) as e:
                errors.append(f"{where}: {e}")
            if key[1] == "Job":
                check_job(doc, where)
            n += 1
    for e in errors:
        print(f"check-k8s: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"check-k8s: {n} manifests valid against kubernetes client {kubernetes.__version__}")


if __name__ == "__main__":
    main()
