#!/usr/bin/env bash
# tools/check_deploy.sh — checks deploy/ as far as a machine without a cluster
# can (tools/test.sh's `deploy` part):
#   1. every YAML file under deploy/ parses (python3-yaml), and the fields that
#      matter hold: the analyze Job is Indexed with FACEQ_SHARD_COUNT equal to
#      its completions, runs `analyze --shard auto`, and its podFailurePolicy
#      names its container; the Deployment's probes GET /health on a port the
#      container opens and its API key comes from a Secret; the Service
#      selects the Deployment's pods and targets that port;
#   2. deploy/slurm/faceq-array.sbatch runs through bash as a 2-task array
#      (SLURM_ARRAY_TASK_ID 0 and 1, MIN 0, COUNT 2) with the freshly built
#      faceq over a folder of real photos, and the two tasks' records name
#      every photo exactly once.
# Needs build/faceq (FACEQ_BUILD_DIR) and models: those of the tests' home
# (build/test-home) when present, else `faceq download models` (the mirror
# ../shared/mirror when FACEQ_MIRROR is not set). Photos: ../shared/data/
# dlib_faces (12), else data/samples. Takes ~10 s.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
csay() { printf 'check_deploy: %s\n' "$*" >&2; }

install_packages python3-yaml
faceq="$FACEQ_BUILD_DIR/faceq"
[ -x "$faceq" ] || { csay "error: no faceq binary at $faceq: build first (tools/setup.sh)"; exit 1; }

# 1. The manifests.
python3 - "$FACEQ_ROOT/deploy" <<'PY'
import pathlib, sys, yaml

root = pathlib.Path(sys.argv[1])
docs, failures = [], []

def check(ok, what):
    if not ok:
        failures.append(what)

for path in sorted(root.rglob("*.y*ml")):
    try:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.relative_to(root), doc))
    except yaml.YAMLError as e:
        failures.append(f"{path}: does not parse: {e}")
for where, doc in docs:
    check(isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"),
          f"{where}: a document without apiVersion, kind or metadata.name")

def pod_containers(doc):
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]

def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}

jobs = {d["metadata"]["name"]: (w, d) for w, d in docs if d.get("kind") == "Job"}
deployments = [(w, d) for w, d in docs if d.get("kind") == "Deployment"]
services = [(w, d) for w, d in docs if d.get("kind") == "Service"]

check("faceq-analyze" in jobs, "no Job faceq-analyze")
if "faceq-analyze" in jobs:
    where, job = jobs["faceq-analyze"]
    spec = job["spec"]
    check(spec.get("completionMode") == "Indexed", f"{where}: completionMode is not Indexed")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = container.get("command", []) + container.get("args", [])
    check(command[:2] == ["faceq", "analyze"], f"{where}: the container does not run faceq analyze")
    check(any(a == "--shard" and b == "auto" for a, b in zip(command, command[1:])),
          f"{where}: faceq analyze without --shard auto")
    count = env_of(container).get("FACEQ_SHARD_COUNT", {}).get("value")
    check(count == str(spec.get("completions")),
          f"{where}: FACEQ_SHARD_COUNT={count!r} differs from completions={spec.get('completions')!r}")
    check(job["spec"]["template"]["spec"].get("restartPolicy") in ("Never", "OnFailure"),
          f"{where}: a Job's pods need restartPolicy Never or OnFailure")
    for rule in spec.get("podFailurePolicy", {}).get("rules", []):
        named = rule.get("onExitCodes", {}).get("containerName")
        check(named in (None, container["name"]), f"{where}: podFailurePolicy names no container {named!r}")

check(len(deployments) == 1, "not exactly one Deployment")
for where, dep in deployments:
    template = dep["spec"]["template"]
    labels = template["metadata"]["labels"]
    check(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(),
          f"{where}: the selector does not match the pod labels")
    (container,) = template["spec"]["containers"]
    command = container.get("command", []) + container.get("args", [])
    check(command[:2] == ["faceq", "serve"], f"{where}: the container does not run faceq serve")
    check("0.0.0.0" in command, f"{where}: faceq serve does not listen on every interface (--host 0.0.0.0)")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    for probe in ("readinessProbe", "livenessProbe"):
        get = container.get(probe, {}).get("httpGet", {})
        check(get.get("path") == "/health", f"{where}: {probe} does not GET /health")
        check(get.get("port") in ports or get.get("port") in ports.values(),
              f"{where}: {probe} port {get.get('port')!r} is not a container port")
    key = env_of(container).get("FACEQ_API_KEY", {})
    check("secretKeyRef" in key.get("valueFrom", {}), f"{where}: FACEQ_API_KEY does not come from a Secret")
    for other_where, svc in services:
        check(svc["spec"]["selector"].items() <= labels.items(),
              f"{other_where}: the Service does not select the Deployment's pods")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort")
            check(target in ports or target in ports.values(),
                  f"{other_where}: targetPort {target!r} is not a container port")
check(len(services) >= 1, "no Service")

for where, doc in docs:
    if doc.get("kind") in ("Job", "Deployment"):
        for c in pod_containers(doc):
            check(env_of(c).get("FACEQ_HOME", {}).get("value"), f"{where}: container {c['name']} sets no FACEQ_HOME")
        # The analyze pods and the serve replicas write one gallery from many
        # machines: PostgreSQL, its URL (which may hold a password) from a Secret.
        for c in pod_containers(doc):
            command = c.get("command", [])
            if command[:2] in (["faceq", "analyze"], ["faceq", "serve"]):
                db = env_of(c).get("FACEQ_DB", {})
                check("secretKeyRef" in db.get("valueFrom", {}),
                      f"{where}: container {c['name']} takes no FACEQ_DB from a Secret (the shared gallery)")
                check("--no-store" not in command, f"{where}: container {c['name']} runs with --no-store")

for f in failures:
    print(f"check_deploy: error: {f}", file=sys.stderr)
print(f"check_deploy: {len(docs)} manifests parsed and checked", file=sys.stderr)
sys.exit(1 if failures else 0)
PY

# 2. The Slurm script, as a 2-task array, without Slurm.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/home"
if [ -d "$FACEQ_BUILD_DIR/test-home/models" ]; then
  ln -s "$FACEQ_BUILD_DIR/test-home/models" "$work/home/models"
else
  default_mirror
  "$faceq" --home "$work/home" download models >&2
fi
photos="$FACEQ_ROOT/../shared/data/dlib_faces"
[ -d "$photos" ] || photos="$FACEQ_ROOT/data/samples"
sbatch_script="$FACEQ_ROOT/deploy/slurm/faceq-array.sbatch"
bash -n "$sbatch_script"
if command -v shellcheck >/dev/null; then shellcheck "$sbatch_script"; fi
for task in 0 1; do
  env -u JOB_COMPLETION_INDEX -u SLURM_ARRAY_TASK_STEP SLURM_ARRAY_TASK_ID="$task" SLURM_ARRAY_TASK_MIN=0 \
    SLURM_ARRAY_TASK_COUNT=2 SLURM_CPUS_PER_TASK=2 FACEQ="$faceq" FACEQ_HOME="$work/home" FACEQ_OUT="$work/out" \
    bash "$sbatch_script" "$photos" 2>>"$work/stderr" || {
    cat "$work/stderr" >&2
    csay "error: the sbatch script failed as array task $task"
    exit 1
  }
done
python3 - "$photos" "$work/out" <<'PY'
import collections, json, pathlib, sys

photos, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
expected = sorted(p.name for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
seen, per_task = collections.Counter(), {}
for task in (0, 1):
    records = [json.loads(line) for line in (out / f"shard-{task}.jsonl").read_text().splitlines()]
    per_task[task] = len(records)
    seen.update(pathlib.Path(r["file"]).name for r in records)
twice = sorted(n for n, c in seen.items() if c > 1)
missing = sorted(set(expected) - set(seen))
extra = sorted(set(seen) - set(expected))
if twice or missing or extra or not expected:
    print(f"check_deploy: error: the 2 tasks did not cover {photos} once: twice {twice}, missing {missing}, "
          f"unexpected {extra}", file=sys.stderr)
    sys.exit(1)
print(f"check_deploy: the sbatch script's 2 tasks covered all {len(expected)} photos of {photos} once "
      f"({per_task[0]} + {per_task[1]})", file=sys.stderr)
PY
