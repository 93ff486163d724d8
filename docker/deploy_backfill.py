#!/usr/bin/env python3
"""The optional backfill stage of ``make deploy-test`` (issue 23): one taxonomy version
backfilled over N generated recipes through the Docker run launcher.

``DEPLOY_TEST_BACKFILL_RECIPES=N`` (default 0: skipped) runs it after the other stages.
N copies of a small recipe (``scale000``..., 200 generated rows, 1 epoch, one shared
taxonomy ``scale``, no beat-the-probe gate) are baked into an image derived from the code
image; the code server is recreated on it, so ``DAGSTER_CURRENT_IMAGE`` (the image of
every run container) is that image too. The daemon is restarted and the webserver reloads
the code location; then ``modelops backfill --taxonomy scale:v1 --wait --json`` runs in
the code container. Recorded: the runs (one per recipe expected), the run containers the
Watcher saw for each run, the statuses, the peak number of concurrent trainings from the
runs' start and end times (Dagster's ``runs`` table) against the ``modelops/training``
limit of ``docker/dagster.yaml``, the wall time and the time per run.

Against a stack left up by ``DEPLOY_TEST_KEEP=1``, the stage runs alone:
``python3 docker/deploy_backfill.py N [PREFIX]`` (as root; a new PREFIX gives new recipe
names, so a second run on the same stack does not find them already trained).

Only the standard library (the system's python3 runs it); the pure parts are tested in
``modelops_tests/deploy/test_deploy_backfill.py``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "scale"
ROWS = 200
BACKFILL_IMAGE = "localhost/modelops-code:deploy-test-backfill"
TRAINING_TAG = "modelops/training"
PROGRESS_SECONDS = 30


# --------------------------------------------------------------------------- pure parts


def recipe_names(count: int, prefix: str = PREFIX) -> list[str]:
    """``prefix000``, ``prefix001``, ...: zero-padded to at least three digits."""
    width = max(3, len(str(count - 1)))
    return [f"{prefix}{n:0{width}d}" for n in range(count)]


def recipe_document(name: str, taxonomy: str) -> dict:
    """A small copy of the demo recipe: the shared data set and taxonomy version, 1 epoch
    on 32 tokens. Without the beat-the-probe gate: one epoch on 200 rows does not beat a
    linear probe, and a gate verdict ends the run FAILURE, which is not what is measured."""
    return {
        "name": name,
        "description": f"deploy-test backfill recipe {name}",
        "data": {"sources": [{"path": f"../data/{taxonomy}/requests.csv"}]},
        "taxonomy": f"../taxonomies/{taxonomy}/v1.yaml",
        "base_model": "minilm@stable",
        "training": {"epochs": 1, "max_length": 32},
        "gates": {"beat_baseline": False},
    }


def recipe_files(count: int, prefix: str = PREFIX) -> dict[str, str]:
    """``{file name: text}`` of the N recipes; JSON, which YAML reads as it is."""
    return {
        f"{name}.yaml": json.dumps(recipe_document(name, prefix), indent=1) + "\n"
        for name in recipe_names(count, prefix)
    }


def dockerfile(base_image: str, prefix: str = PREFIX, rows: int = ROWS) -> str:
    """The derived image: the code image plus the recipes (the build context's
    ``recipes/``), their data set and their taxonomy version, where the recipes read them."""
    root = "/opt/modelops"
    taxonomy = (
        "from pathlib import Path; from modelops.demo.files import write_taxonomy; "
        f"write_taxonomy(Path('{root}/taxonomies/{prefix}/v1.yaml'), '{prefix}', 'v1')"
    )
    return (
        f"FROM {base_image}\n"
        "USER root\n"
        f"COPY recipes/ {root}/recipes/\n"
        f"RUN modelops demo-data --out {root}/data/{prefix}/requests.csv --rows {rows} "
        f'--seed 3 && python -c "{taxonomy}"\n'
        "USER modelops\n"
    )


def training_limit(dagster_yaml: str, key: str = TRAINING_TAG) -> int | None:
    """The run coordinator's limit on runs tagged ``key`` in ``docker/dagster.yaml``
    (read without a YAML parser: this runs with the system's python3)."""
    blocks = re.split(r"\n\s*- key: ", dagster_yaml)
    for block in blocks[1:]:
        lines = block.splitlines()
        if lines and lines[0].strip() == key:
            for line in lines[1:]:
                found = re.fullmatch(r"\s*limit:\s*(\d+)\s*", line)
                if found:
                    return int(found.group(1))
    return None


def peak_concurrency(intervals: list[tuple[float, float | None]], now: float) -> int:
    """The most intervals open at once; an interval without an end is open until ``now``.
    One that ends when another starts does not overlap it."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end or now, -1) for _, end in intervals]
    )
    peak = running = 0
    for _, step in events:  # at one instant the ends (-1) sort before the starts
        running += step
        peak = max(peak, running)
    return peak


def summarize(
    report: dict,
    rows: dict[str, dict],
    containers: dict[str, str],
    limit: int | None,
    wall_s: float,
    count: int,
) -> dict:
    """The stage's result from the backfill report, the runs' rows (``{run_id: status,
    start, end, tagged}``) and the run containers seen (``{name: command}``)."""
    runs = [(b["recipe"], r["run_id"]) for b in report.get("backfills") or [] for r in b["runs"]]
    recipes_with_runs = {recipe for recipe, _ in runs}
    seen = {run_id: sum(run_id in cmd for cmd in containers.values()) for _, run_id in runs}
    statuses: dict[str, int] = {}
    for _, run_id in runs:
        status = rows.get(run_id, {}).get("status", "UNKNOWN")
        statuses[status] = statuses.get(status, 0) + 1
    intervals = [(r["start"], r["end"]) for r in rows.values() if r.get("start") is not None]
    durations = [e - s for s, e in intervals if e is not None]
    peak = peak_concurrency(intervals, now=time.time()) if intervals else 0
    result = {
        "recipes": count,
        "launched": len(report.get("launched") or []),
        "already_done": len(report.get("already_done") or []),
        "backfills": len(report.get("backfills") or []),
        "runs": len(runs),
        "recipes_with_one_run": sum(
            1 for name in recipes_with_runs if sum(r == name for r, _ in runs) == 1
        ),
        "statuses": statuses,
        "all_success": bool(runs) and statuses == {"SUCCESS": len(runs)},
        "runs_tagged_training": sum(1 for r in rows.values() if r.get("tagged")),
        "run_containers_seen": len(containers),
        "runs_with_one_container": sum(1 for n in seen.values() if n == 1),
        "peak_concurrent_trainings": peak,
        "training_limit": limit,
        "wall_s": round(wall_s, 1),
        "run_s_mean": round(statistics.fmean(durations), 1) if durations else None,
        "run_s_max": round(max(durations), 1) if durations else None,
        "mean_concurrent_trainings": round(sum(durations) / wall_s, 2) if wall_s else None,
        "backfill_status": report.get("status"),
    }
    result["ok"] = (
        result["runs"] == count
        and result["recipes_with_one_run"] == count
        and result["all_success"]
        and result["runs_with_one_container"] == count
        and limit is not None
        and peak == min(limit, count)
    )
    return result


# --------------------------------------------------------------------------- the stage


WAIT_FOR_ASSETS = """
import os, sys, time
from modelops.defs.graphql_api import GraphQL, STATUS_QUERY
from modelops.defs.keys import RecipeKeys
client = GraphQL(os.environ["MODELOPS_DAGSTER_URL"], timeout=300)
reload = ('mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name)'
          ' { __typename } }')
keys = [{"path": list(RecipeKeys.of(name).evaluation.path)} for name in sys.argv[1:]]
deadline = time.monotonic() + 900
while True:
    client.call(reload, {"name": "modelops.definitions"})
    found = len(client.call(STATUS_QUERY, {"keys": keys})["assetNodes"])
    print(found, "of", len(keys), "recipes known to the webserver", flush=True)
    if found == len(keys) or time.monotonic() > deadline:
        sys.exit(0 if found == len(keys) else 1)
    time.sleep(10)
"""


def build_image(dt, count: int, prefix: str) -> None:
    """The derived image with the N recipes, their data and their taxonomy version."""
    context = dt.WORK / "backfill-image"
    if context.exists():
        subprocess.run(["rm", "-rf", str(context)], check=True)
    (context / "recipes").mkdir(parents=True)
    for name, text in recipe_files(count, prefix).items():
        (context / "recipes" / name).write_text(text)
    (context / "Dockerfile").write_text(dockerfile(dt.CODE_IMAGE, prefix))
    dt.run([*dt.NICE, "podman", "build", "-q", "-t", BACKFILL_IMAGE, str(context)], env=dt.ENV)


def switch_code_image(dt, names: list[str]) -> None:
    """The code server (and so every run container) on the derived image; the daemon
    restarted and the webserver's code location reloaded, until they know the recipes."""
    env_file = dt.WORK / "env"
    text = re.sub(
        r"(?m)^MODELOPS_IMAGE=.*$", f"MODELOPS_IMAGE={BACKFILL_IMAGE}", env_file.read_text()
    )
    env_file.write_text(text)
    dt.ENVFILE["MODELOPS_IMAGE"] = BACKFILL_IMAGE
    # --no-deps: Compose 2.40 on podman 4.3 recreates every dependency (PostgreSQL, S3) on
    # `up` of a running stack, even unchanged (measured here; PostgreSQL was killed in it).
    dt.compose("up", "-d", "--no-build", "--no-deps", "modelops-code", timeout=1800)
    dt.wait_healthy(900)
    dt.compose("restart", "dagster-daemon", timeout=300)
    dt.wait_healthy(900)
    known = dt.podman(
        "exec",
        dt.container("modelops-code"),
        "python",
        "-c",
        WAIT_FOR_ASSETS,
        *names,
        check=False,
        timeout=1200,
    )
    dt.log(f"code location: {known.stdout.strip().splitlines()[-1:]} {known.stderr[-500:]}")
    assert known.returncode == 0, "the webserver does not know the generated recipes"


def launch_and_wait(dt, prefix: str, watcher, before: set, timeout: float) -> tuple[dict, float]:
    """``modelops backfill --taxonomy PREFIX:v1 --wait --json`` in the code container,
    with a progress line every 30 s; returns its report and the wall time."""
    out, progress = dt.WORK / "backfill-report.json", dt.WORK / "backfill-progress.log"
    cmd = ["podman", "exec", dt.container("modelops-code"), "modelops", "backfill"]
    cmd += ["--taxonomy", f"{prefix}:v1", "--wait", "--json"]
    dt.log("$ " + " ".join(cmd))
    start = time.monotonic()
    with open(out, "w") as stdout, open(progress, "w") as stderr:
        process = subprocess.Popen(cmd, env=dt.ENV, stdout=stdout, stderr=stderr)
        while process.poll() is None:
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                process.kill()
                raise AssertionError(f"the backfill did not finish in {timeout:.0f} s")
            try:
                process.wait(PROGRESS_SECONDS)
            except subprocess.TimeoutExpired:
                lines = progress.read_text().splitlines()
                last = lines[-1][:160] if lines else "starting"
                seen = len(set(watcher.run_containers) - before)
                elapsed = time.monotonic() - start
                dt.log(f"backfill {elapsed:.0f} s: {last}; run containers seen: {seen}")
    wall = time.monotonic() - start
    text = out.read_text()
    dt.log(f"backfill exit {process.returncode}; report {out}, progress {progress}")
    assert text.strip(), f"no report from modelops backfill: {progress.read_text()[-1500:]}"
    return json.loads(text), wall


def run_rows(dt, run_ids: list[str]) -> dict[str, dict]:
    """``{run_id: status, start, end, tagged}`` from Dagster's run storage."""
    if not run_ids:
        return {}
    ids = ", ".join(f"'{r}'" for r in run_ids if re.fullmatch(r"[0-9a-f-]+", r))
    sql = (
        "SELECT r.run_id, r.status, r.start_time, r.end_time, "
        f"EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.run_id AND t.key = '{TRAINING_TAG}') "
        f"FROM runs r WHERE r.run_id IN ({ids})"
    )
    out = dt.podman(
        "exec", dt.container("postgres"), "psql", "-U", "postgres", "-d", "dagster", "-tAc", sql
    ).stdout
    rows = {}
    for line in out.splitlines():
        if line.strip():
            run_id, status, start, end, tagged = line.split("|")
            rows[run_id] = {
                "status": status,
                "start": float(start) if start else None,
                "end": float(end) if end else None,
                "tagged": tagged == "t",
            }
    return rows


def run_stage(dt, count: int, watcher, prefix: str = PREFIX) -> dict:
    """The whole stage on the running stack; ``dt`` is the ``deploy_test`` module."""
    names = recipe_names(count, prefix)
    with dt.timed("backfill image"):
        build_image(dt, count, prefix)
    with dt.timed("code server on the backfill image"):
        switch_code_image(dt, names)
    before = set(watcher.run_containers)
    report, wall = launch_and_wait(dt, prefix, watcher, before, timeout=max(3600, 600 * count))
    time.sleep(6)  # the Watcher's last look at the last run's container
    run_ids = [r["run_id"] for b in report.get("backfills") or [] for r in b["runs"]]
    rows = run_rows(dt, run_ids)
    containers = {n: c for n, c in watcher.run_containers.items() if n not in before}
    limit = training_limit((dt.REPO / "docker" / "dagster.yaml").read_text())
    result = summarize(report, rows, containers, limit, wall, count)
    dt.log(f"backfill of {count} recipes: {json.dumps(result)}")
    return result


def main() -> int:
    """The stage alone, against a stack ``DEPLOY_TEST_KEEP=1`` left up."""
    import deploy_test as dt

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    prefix = sys.argv[2] if len(sys.argv) > 2 else PREFIX
    dt.install_tools()
    env = dict(
        line.split("=", 1) for line in (dt.WORK / "env").read_text().splitlines() if "=" in line
    )
    dt.ENVFILE.update(env)
    watcher = dt.Watcher()
    watcher.start()
    try:
        dt.RESULT["backfill"] = run_stage(dt, count, watcher, prefix)
    finally:
        watcher.stop.set()
        dt.RESULT["seconds"] = round(time.monotonic() - dt.START, 1)
        print(json.dumps(dt.RESULT), flush=True)
    return 0 if dt.RESULT["backfill"]["ok"] else 1


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("the deploy test's backfill stage runs as root (podman)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
