"""Leg 3 of ``benchmarks/scale.py``: ``modelops backfill`` of one taxonomy version over N
recipes, through the backfill daemon's and the queued run coordinator's iterations on the
instance of ``docker/dagster.yaml`` on PostgreSQL (a database made and dropped here).

Without ``execute`` the runs stay queued: the runs made, how many recipes each holds.
With ``execute`` the default run launcher starts each run in its own process and they run
to the end: each recipe a tiny random BERT (hidden 32, 2 layers, the test fixture's
``tiny@stable``) so a run is seconds of training and the platform's own overhead shows;
the peak number of runs at once (from the run records' start and end times) is set
against the ``modelops/training`` limit, and the processes are counted from each run's
"Started process for run (pid: N)" event. With ``fail_one`` the last recipe's data file
has no label column: its run fails, the others finish, then the file is mended and
``modelops backfill`` runs again, which must launch that recipe alone.

    nice -n 5 .venv/bin/python benchmarks/scale.py --legs backfill --backfill 100 \
        --execute --fail-one
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from scale import (
    MARK,
    REPO,
    child_result,
    drop_database,
    fresh_database,
    init_database,
    write_recipes,
)

PROGRESS_SECONDS = 30.0
PID = re.compile(r"Started process for run \(pid: (\d+)\)")


def write_tiny_base(root: Path) -> Path:
    """The tests' tiny random BERT and a catalog naming it ``tiny@stable``."""
    from modelops.demo.generator import DemoKnobs, generate
    from modelops_tests.fixtures.tiny_models import save_tiny_bert, write_catalog

    texts = generate(DemoKnobs(n=600, seed=1))["text"].tolist()
    model = save_tiny_bert(root / "tiny-bert", texts)
    (root / "catalog").mkdir(parents=True, exist_ok=True)
    return write_catalog(root / "catalog" / "base_models.yaml", model)


def break_one_recipe(root: Path, recipe: str) -> tuple[Path, Path]:
    """Point ``recipe`` at a data file without a label column; return (broken, good)."""
    import yaml

    good = root / "data" / "requests.csv"
    broken = root / "data" / f"{recipe}.csv"
    broken.write_text("text,labelz\nhello,card_lost\n", encoding="utf-8")
    path = root / "recipes" / f"{recipe}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["data"] = {"sources": [{"path": f"../data/{recipe}.csv"}]}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return broken, good


def instance_config(home: Path) -> dict:
    """docker/dagster.yaml less what needs the images (the Docker run launcher, S3 logs)."""
    import yaml

    config = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    config.pop("run_launcher")  # dagster-docker: in the images only
    config.pop("compute_logs")  # no S3 server in this benchmark
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return config


@contextlib.contextmanager
def dequeuing(context, interval: float) -> Iterator[None]:
    """The queued run coordinator's iterations in a thread of their own every
    ``interval`` seconds, as the daemon runs them (beside the backfill daemon's, not
    after them: one backfill iteration over 100 backfills takes seconds, and runs
    waiting for it would leave the training slots idle)."""
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    stop, errors = threading.Event(), []

    def loop() -> None:
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=interval)
        try:
            while not stop.is_set():
                list(daemon.run_iteration(context))
                stop.wait(interval)
        except Exception as exc:  # raised in the benchmark, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=300)
    if errors:
        raise errors[0]


def drive(context, ids: list[str], execute: bool, interval: float, log) -> dict:
    """Backfill daemon iterations until every run of the backfills ``ids`` exists
    (``execute`` False) or every backfill ended, the queued runs dequeued meanwhile every
    ``interval`` seconds; progress about every 30 s. Returns the backfill iterations and
    when the runs were all submitted."""
    from dagster._daemon.backfill import execute_backfill_iteration

    from modelops.defs import webserver

    instance, wanted = context.instance, set(ids)
    started = last = time.perf_counter()
    iterations, submitted = 0, None
    with dequeuing(context, interval) if execute else contextlib.nullcontext():
        while True:
            iterations += 1
            for error in execute_backfill_iteration(context, log):
                if error is not None:
                    raise RuntimeError(str(error))
            runs = [r for r in instance.get_runs() if r.tags.get("dagster/backfill") in wanted]
            if submitted is None and len(runs) >= len(ids):
                submitted = time.perf_counter()
                if not execute:
                    break
            ended = sum(instance.get_backfill(i).status.value in webserver.TERMINAL for i in ids)
            if ended == len(ids):
                break
            if time.perf_counter() - last >= PROGRESS_SECONDS:
                last = time.perf_counter()
                progress(runs, time.perf_counter() - started, ended, iterations)
            time.sleep(1)
    return {"iterations": iterations, "submitted": submitted}


def progress(runs, elapsed: float, ended: int, iterations: int) -> None:
    states = Counter(r.status.value for r in runs)
    done = states["SUCCESS"] + states["FAILURE"] + states["CANCELED"]
    left = elapsed / done * (len(runs) - done) if done else float("nan")
    print(
        f"    {done}/{len(runs)} runs ended after {elapsed:.0f} s (about {left:.0f} s left), "
        f"{ended} backfills marked ended, {iterations} backfill iterations; {dict(states)}",
        file=sys.stderr,
        flush=True,
    )


def launch_and_drive(context, settings, execute: bool, log) -> dict:
    """``modelops backfill --taxonomy demo:v1`` (GraphQL answered in process), then the
    daemon's iterations until its runs are submitted or ended."""
    from modelops.defs import webserver

    started = time.perf_counter()
    report = webserver.launch_taxonomy_backfill(settings, "demo", "v1", url="http://local")
    ids = [b["id"] for b in report["backfills"]]
    launched = time.perf_counter()
    interval = context.instance.run_coordinator.dequeue_interval_seconds
    driven = (
        drive(context, ids, execute, interval, log) if ids else {"iterations": 0, "submitted": None}
    )
    finished = time.perf_counter()
    runs = [r for r in context.instance.get_runs() if r.tags.get("dagster/backfill") in set(ids)]
    return {
        "backfills": len(ids),
        "launched": len(report["launched"]),
        "already_done": len(report["already_done"]),
        "launched_recipes": report["launched"][:5],
        "runs": len(runs),
        "statuses": dict(Counter(r.status.value for r in runs)),
        "iterations": driven["iterations"],
        "launch_s": launched - started,
        "submit_s": (driven["submitted"] or finished) - started,
        "execute_s": finished - started if execute else None,
    }


def run_anatomy(instance, records) -> dict:
    """How many distinct processes ran the runs (the launcher's "Started process" events),
    and where a run's time went: the median run (start to end), the median time inside
    its steps (each step's start to its end, summed) and per step; the rest is processes
    starting, imports and loading the code location."""
    import statistics

    import dagster as dg

    kinds = {
        dg.DagsterEventType.ENGINE_EVENT,
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    pids, runs, steps = set(), [], {}
    for record in records:
        if not (record.start_time and record.end_time):
            continue
        began, inside = {}, 0.0
        for event in instance.get_records_for_run(record.dagster_run.run_id, of_type=kinds).records:
            entry = event.event_log_entry
            found = PID.search(entry.message or "")
            if found:
                pids.add(found.group(1))
            if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
                began[entry.step_key] = entry.timestamp
            elif entry.step_key in began:
                took = entry.timestamp - began.pop(entry.step_key)
                steps.setdefault(entry.step_key.split("__", 1)[-1], []).append(took)
                inside += took
        runs.append((record.end_time - record.start_time, inside))
    median = statistics.median
    timed = [r for r in records if r.start_time and r.end_time]
    span = max(r.end_time for r in timed) - min(r.start_time for r in timed) if timed else 0
    return {
        "processes": len(pids),
        # run time over (peak slots x first start to last end): how full the slots were
        "busy_share": sum(r for r, _ in runs) / (peak_concurrency(records) * span)
        if span
        else None,
        "run_median_s": median(r for r, _ in runs) if runs else None,
        "in_steps_median_s": median(i for _, i in runs) if runs else None,
        "step_median_s": {k: round(median(v), 2) for k, v in sorted(steps.items())},
    }


def child_backfill(execute: bool, fail_one: bool) -> None:
    """In a fresh process with the recipes' environment: the backfill over every recipe,
    with ``fail_one`` then the relaunch after the broken recipe's data is mended."""
    import logging

    import dagster as dg
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.controller import create_daemon_grpc_server_registry
    from dagster_graphql.test.utils import execute_dagster_graphql

    from modelops.config.settings import Settings
    from modelops.defs import webserver

    config = instance_config(Path(os.environ["DAGSTER_HOME"]))
    limit = config["run_coordinator"]["config"]["tag_concurrency_limits"][0]
    settings = Settings.from_env()
    log = logging.getLogger("bf")
    started = time.perf_counter()
    target = ModuleTarget("modelops.definitions", None, str(REPO), "modelops.definitions")
    with (
        dg.DagsterInstance.get() as instance,
        create_daemon_grpc_server_registry(instance) as registry,
        WorkspaceProcessContext(instance, target, grpc_server_registry=registry) as context,
    ):
        webserver.GraphQL.call = lambda self, query, variables: (
            execute_dagster_graphql(context.create_request_context(), query, variables).data
        )
        loaded = time.perf_counter()
        result = launch_and_drive(context, settings, execute, log)
        records = instance.get_run_records()
        runs = [r.dagster_run for r in records]
        if execute:
            result["peak_concurrent_trainings"] = peak_concurrency(records)
            result.update(run_anatomy(instance, records))
        if fail_one:
            broken, good = (Path(p) for p in os.environ["SCALE_BROKEN_DATA"].split(os.pathsep))
            shutil.copyfile(good, broken)
            result["relaunch"] = launch_and_drive(context, settings, execute, log)
        result["all_runs"] = len(instance.get_runs())
    result.update(
        recipes_per_run=sorted({len({k.path[0] for k in r.asset_selection}) for r in runs}),
        training_limit=limit["limit"],
        location_load_s=loaded - started,
    )
    print(MARK + json.dumps(result))


def peak_concurrency(records) -> int:
    """The most runs that were running at once, from their records' start and end times."""
    events = sorted(
        [(r.start_time, 1) for r in records if r.start_time]
        + [(r.end_time, -1) for r in records if r.end_time]
    )
    peak = running = 0
    for _, step in events:  # an end before a start at the same instant (sorted -1 first)
        running += step
        peak = max(peak, running)
    return peak


def backfill_env(root: Path, count: int, database: str, execute: bool, fail_one: bool) -> dict:
    """The recipes (tiny BERT when executed), the instance's PostgreSQL database and,
    with ``fail_one``, the broken data file of the last recipe."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if execute:
        env.update(write_recipes(root, count, base="tiny@stable", catalog=write_tiny_base(root)))
    else:
        env.update(write_recipes(root, count))
    init_database(env)  # the registry's schema, as modelops init makes it
    if fail_one:
        broken, good = break_one_recipe(root, f"demo{count - 1:04d}")
        env["SCALE_BROKEN_DATA"] = f"{broken}{os.pathsep}{good}"
    env.update(
        DAGSTER_PG_HOST="127.0.0.1",
        DAGSTER_PG_USER="postgres",
        DAGSTER_PG_PASSWORD="",
        DAGSTER_PG_DB=database,
    )
    return env


def run_metered(command: list[str], env: dict, cwd: str) -> tuple[str, float]:
    """Run ``command``; return its stdout and the CPU seconds (user + system) of it and
    every process under it (its code server, the runs' processes, their steps), sampled
    twice a second with psutil (peft's dependency): the last half second of each process
    is missed. On a machine shared with other work, this over the cores is about the wall
    time the leg would take alone."""
    import psutil

    seen: dict[tuple[int, float], float] = {}
    with tempfile.TemporaryFile("w+") as stdout:
        # stderr (progress, Dagster's warnings) goes to this process's stderr
        child = subprocess.Popen(command, env=env, cwd=cwd, stdout=stdout, text=True)
        root = psutil.Process(child.pid)
        while child.poll() is None:
            with contextlib.suppress(psutil.Error):
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        times = proc.cpu_times()
                        seen[(proc.pid, proc.create_time())] = times.user + times.system
            time.sleep(0.5)
        end_leftovers(seen)
        if child.returncode != 0:
            raise RuntimeError(f"backfill child exited {child.returncode}")
        stdout.seek(0)
        return stdout.read(), sum(seen.values())


def end_leftovers(seen: dict[tuple[int, float], float]) -> None:
    """Stop what the child left running among the processes it started (a code server
    outlived it once): those with the pid and start time seen, still alive."""
    import psutil

    left = []
    for pid, created in seen:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.create_time() == created:
                left.append(proc)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    for proc in psutil.wait_procs(left, timeout=10)[1]:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def bench_backfill(counts: list[int], execute: bool, fail_one: bool = False) -> list[dict]:
    rows = []
    for count in counts:
        name, _ = fresh_database()
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix=f"scale-bf-{count}-") as tmp:
                env = backfill_env(Path(tmp), count, name, execute, fail_one)
                command = [sys.executable, __file__, "--child"]
                command += (["--execute"] if execute else []) + (["--fail-one"] * fail_one)
                stdout, cpu_s = run_metered(command, env, tmp)
        finally:
            drop_database(name)
        result = child_result(stdout)
        result.update(recipes=count, wall_s=time.perf_counter() - started, cpu_s=cpu_s)
        rows.append(result)
        print(describe(result, execute), flush=True)
    return rows


def describe(r: dict, execute: bool) -> str:
    line = (
        f"  {r['recipes']:4d} recipes: {r['backfills']} backfills -> {r['runs']} runs "
        f"({r['recipes_per_run']} recipes per run, {r['statuses']}) in {r['iterations']} "
        f"daemon iterations; code location load {r['location_load_s']:5.1f} s, launch "
        f"{r['launch_s']:5.1f} s, runs submitted after {r['submit_s']:5.1f} s"
    )
    if execute:
        line += (
            f", all ended after {r['execute_s']:5.1f} s in {r['processes']} processes, peak "
            f"{r['peak_concurrent_trainings']} trainings at once (limit {r['training_limit']})"
            f"\n        a run took {r['run_median_s']:.1f} s (median), "
            f"{r['in_steps_median_s']:.1f} s of it inside its steps {r['step_median_s']}; "
            f"the training slots were busy {r['busy_share']:.0%} of the time"
        )
    line += f"\n        {r['cpu_s']:.0f} CPU seconds in all, wall {r['wall_s']:.0f} s"
    if "relaunch" in r:
        a = r["relaunch"]
        line += (
            f"\n        relaunch after mending the broken recipe: {a['already_done']} already "
            f"done, launched {a['launched_recipes']} -> {a['runs']} runs {a['statuses']} "
            f"in {a['execute_s'] or 0:5.1f} s"
        )
    return line


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    child_backfill("--execute" in sys.argv, "--fail-one" in sys.argv)
