"""How the platform's fixed costs grow: definitions load and sensor ticks with the recipe
count, the drift path's queries with the production log's size, a backfill's submission
through the queued run coordinator with the recipe count, and novelty scoring's memory with
the reference's size.

    nice -n 5 .venv/bin/python benchmarks/scale.py                   # legs 1-3 (~20 min)
    nice -n 5 .venv/bin/python benchmarks/scale.py --recipes 1,10 --rows 1e5 --backfill 10
    nice -n 5 .venv/bin/python benchmarks/scale.py --legs backfill --backfill 10 --execute
    nice -n 5 .venv/bin/python benchmarks/scale.py --legs definitions --no-ticks \
        --recipes 1,10,100,500,1000                                  # load time only
    nice -n 5 .venv/bin/python benchmarks/scale.py --novelty         # leg 4 (~10 min)
    nice -n 5 .venv/bin/python benchmarks/scale.py --all             # every leg

The last line printed is JSON with the issue's ratios from whichever legs ran
(``definitions_ratio_1000_to_1``: imports + definitions at 1,000 recipes over 1;
``sensor_round_ratio_1000_to_10``; ``novelty_peak_mb_at_1e6``: the process's peak RSS).

1. Definitions load + one tick of every sensor, at 1, 10, 100, 500 generated recipes
   (copies of the demo recipe in a temporary folder). Each count runs in a fresh Python
   process, as a code server starts: imports, then building the definitions, then one
   evaluation of every sensor against an ephemeral instance (``--no-ticks``: none); the
   fastest of ``--repeats`` processes counts. Past ``--per-location`` recipes (default 40;
   0: one location holds all) the recipes are split between code locations
   (``MODELOPS_RECIPE_SHARD``, docs/deploy.md) and the fullest location is measured. It
   also reports which of torch, transformers, peft and evidently were imported, and the
   process's peak RSS. Ratios are against 1 recipe.
2. The drift path on PostgreSQL (127.0.0.1:5432, a database created and dropped here)
   with 1e5, 1e6, 1e7 (``--rows``: up to 1e8) logged predictions, loaded as a restore
   would (``generate_series`` in chunks with the secondary indexes and foreign keys set
   aside, then built in one sort each, then VACUUM ANALYZE; the loading backend reniced
   to 15; the disk checked first): what the drift report asset, the drift check and the
   production-window sensor ask the production log (the availability count, the newest
   window, its labels, the new rows since the cursor and on a first tick), then at the
   largest size each read's EXPLAIN (ANALYZE, BUFFERS). The Evidently check itself reads
   the fixed-size window only, so its cost does not depend on the table's size; it is
   not re-measured here (benchmarks/drift_banking77.py). Ratios are against the first
   size.
3. ``modelops backfill`` of one taxonomy version over N recipes: one backfill per recipe
   (GraphQL answered in process by Dagster's schema), the backfill daemon's and the
   queued run coordinator's iterations on the instance of docker/dagster.yaml on
   PostgreSQL: the runs made, how many recipes each holds. With ``--execute`` the runs
   are launched (a process each) and run to the end, and the peak number of trainings
   at once (from the run records' start and end times) is set against the
   ``modelops/training`` limit; else they stay queued.
4. Novelty scoring (``modelops.monitoring.novelty``) with a float32 reference of 1e4, 1e5,
   1e6 rows x 384 dimensions, each size in a fresh process: the threshold as the bundle
   computes it (over a sample of 10,000 reference rows past that size), then a window of
   500 rows against the whole reference; time, tracemalloc peak and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
MARK = "SCALE-RESULT "


def child_result(stdout: str) -> dict:
    """The result line a child process printed (code servers print their own lines)."""
    (line,) = [x for x in stdout.splitlines() if x.startswith(MARK)]
    return json.loads(line.removeprefix(MARK))


# ----------------------------------------------------------------- workspace


def write_recipes(
    root: Path, count: int, base: str = "minilm@stable", catalog: Path | None = None
) -> dict[str, str]:
    """``count`` copies of the demo recipe (names demo0000...) on ``base`` of ``catalog``
    (default: the repository's), one taxonomy, one dataset; the environment a code
    server would have."""
    import yaml

    from modelops.demo.files import taxonomy_document, write_demo_dataset
    from modelops.demo.generator import DemoKnobs

    data = root / "data" / "requests.csv"
    write_demo_dataset(data, DemoKnobs(n=200, seed=3))
    taxonomy = root / "taxonomies" / "demo" / "v1.yaml"
    taxonomy.parent.mkdir(parents=True, exist_ok=True)
    taxonomy.write_text(yaml.safe_dump(taxonomy_document("demo", "v1")), encoding="utf-8")
    recipes = root / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        doc = {
            "name": f"demo{n:04d}",
            "data": {"sources": [{"path": "../data/requests.csv"}]},
            "taxonomy": "../taxonomies/demo/v1.yaml",
            "base_model": base,
            "training": {"epochs": 1, "max_length": 32},
            # one epoch on 200 rows does not beat the baseline: a gate verdict would end
            # every executed backfill run FAILURE, which is not what leg 3 measures
            "gates": {"beat_baseline": False},
        }
        (recipes / f"demo{n:04d}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    home = root / ".modelops"
    return {
        "MODELOPS_HOME": str(home),
        "MODELOPS_RECIPES": str(recipes),
        "MODELOPS_DATABASE_URL": f"sqlite:///{home / 'modelops.db'}",
        "MODELOPS_ARTIFACTS": str(home / "artifacts"),
        "MODELOPS_CATALOG": str(catalog or REPO / "catalog" / "base_models.yaml"),
        "MODELOPS_TORCH_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DAGSTER_HOME": str(home / "dagster"),
    }


def child_definitions(ticks: bool = True) -> None:
    """In a fresh process: import, build the definitions, tick every sensor once."""
    started = time.perf_counter()
    import dagster as dg

    from modelops.config.settings import Settings
    from modelops.defs.build import build_definitions
    from modelops.defs.resources import build_resources

    imported = time.perf_counter()
    settings = Settings.from_env()
    defs = build_definitions(settings)
    defs.resolve_asset_graph()
    sensors = list(defs.sensors)
    built = time.perf_counter()
    recipes_loaded = len({key.path[0] for key in defs.resolve_asset_graph().get_all_asset_keys()})
    if ticks:
        resources = build_resources(settings)
        with dg.DagsterInstance.ephemeral() as instance:
            for sensor in sensors:
                with dg.build_sensor_context(instance=instance, resources=resources) as context:
                    sensor(context)
    ticked = time.perf_counter()
    heavy = sorted(m for m in ("torch", "transformers", "peft", "evidently") if m in sys.modules)
    print(
        MARK
        + json.dumps(
            {
                "import_s": imported - started,
                "build_s": built - imported,
                "sensors": len(sensors),
                "recipes_loaded": recipes_loaded,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "ticks_s": ticked - built if ticks else None,
                "heavy_modules": heavy,
            }
        )
    )


def init_database(env: dict[str, str]) -> None:
    """The registry schema, as ``modelops init`` makes it (the other commands, and the
    sensors, refuse a database that is not at the schema's head)."""
    from modelops.stores.db.engine import migrate

    Path(env["MODELOPS_HOME"]).mkdir(parents=True, exist_ok=True)
    migrate(env["MODELOPS_DATABASE_URL"])


def fullest_shard(count: int, per_location: int) -> str | None:
    """``MODELOPS_RECIPE_SHARD`` of the code location holding the most of ``count``
    generated recipes split ``per_location`` a location (None: one location holds all)."""
    if not per_location or count <= per_location:
        return None
    from modelops.config.recipe_shard import shard_of

    shards = -(-count // per_location)
    sizes = Counter(shard_of(f"demo{n:04d}", shards) for n in range(count))
    index, _ = max(sizes.items(), key=lambda item: (item[1], -item[0]))
    return f"{index}/{shards}"


def bench_definitions(
    counts: list[int], ticks: bool = True, per_location: int = 0, repeats: int = 1
) -> list[dict]:
    """Per count, the fastest of ``repeats`` fresh processes (imports + definitions). The
    counts take turns (1, 10, ..., then again), so a busy spell of the machine falls on
    all of them alike, and the first process after a change pays for a cold file cache."""
    with contextlib.ExitStack() as stack:
        envs = {}
        for count in counts:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"scale-{count}-"))
            env = {**os.environ, **write_recipes(Path(tmp), count), "PYTHONPATH": str(REPO)}
            shard = fullest_shard(count, per_location)
            if shard:
                env["MODELOPS_RECIPE_SHARD"] = shard
            init_database(env)
            envs[count] = (env, tmp, shard)
        tries: dict[int, list[dict]] = {count: [] for count in counts}
        for _ in range(max(1, repeats)):
            for count, (env, tmp, _) in envs.items():
                tries[count].append(definitions_process(env, tmp, ticks))
    rows = []
    for count in counts:
        result = min(tries[count], key=lambda r: r["import_s"] + r["build_s"])
        shard = envs[count][2]
        result.update(recipes=count, shard=shard, location_recipes=result.pop("recipes_loaded"))
        rows.append(result)
        print(
            f"  {count:4d} recipes"
            + (f" (location {shard}: {result['location_recipes']})" if shard else "")
            + f": process {result['process_s']:6.1f} s = imports {result['import_s']:5.1f} s"
            f" + definitions {result['build_s']:6.2f} s, {result['sensors']} sensors"
            + (f", ticks {result['ticks_s']:6.2f} s" if ticks else "")
            + f", RSS {result['max_rss_mb']:.0f} MB"
            + f"; imported {', '.join(result['heavy_modules']) or 'none'} of torch,"
            " transformers, peft, evidently",
            flush=True,
        )
    return rows


def definitions_process(env: dict, cwd: str, ticks: bool) -> dict:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child-definitions"] + ([] if ticks else ["--no-ticks"]),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return {**child_result(out.stdout), "process_s": wall}


# ----------------------------------------------------------------- production log


def fresh_database() -> tuple[str, str]:
    import sqlalchemy as sa

    name = f"modelops_scale_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    admin.dispose()
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text("select pg_terminate_backend(pid) from pg_stat_activity where datname = :n"),
            {"n": name},
        )
        conn.execute(sa.text(f'drop database if exists "{name}"'))
    admin.dispose()


# Each logged prediction as a function of its id g: ``bench`` holds ~90 % of the rows,
# ``quiet`` 5,000 rows all among the first 10,000 ids, ``other`` the rest; one prediction
# in 20 of each recipe gets a true label an hour after it was made.
RECIPE_OF = (
    "case when g <= 10000 and g % 2 = 0 then 'quiet' when g % 10 = 0 then 'other' else 'bench' end"
)
AT_OF = "timestamptz '2026-01-01 00:00:00+00' + g * interval '20 ms'"
INSERT = f"""
insert into predictions (id, at, recipe, taxonomy_version, adapter_id, text, text_sha256,
    text_chars, predicted_label, confidence, top_k, source, batch_id, external_id)
select g, {AT_OF}, {RECIPE_OF}, 'v1', 1, 'request number ' || g,
    md5(g::text) || md5((g + 1)::text), 20, 'label_' || (g % 77), random(), '[]'::json,
    'benchmark', 'b' || (g / 1000), null
from generate_series(:start, :stop) as g
"""
# g = 10 q + r: the recipe depends on r (and, below 10,001, on g's parity), the label on
# q = r mod 20, so each recipe gets one label in 20 of its rows.
FEEDBACK = f"""
insert into feedback (at, recipe, prediction_id, text, text_sha256, true_label, source)
select {AT_OF} + interval '1 hour', {RECIPE_OF}, g, null, md5(g::text) || md5((g + 1)::text),
    'label_' || (g % 77), 'benchmark'
from generate_series(:start, :stop) as g where (g / 10) % 20 = g % 10
"""
LOAD_CHUNK = 2_000_000  # rows per INSERT (one transaction each)
PROGRESS_S = 30
LOG_TABLES = ("predictions", "feedback")
SECONDARY = """
select c.relname, pg_get_indexdef(i.indexrelid), pg_relation_size(i.indexrelid)
from pg_index i join pg_class c on c.oid = i.indexrelid
where i.indrelid in ('predictions'::regclass, 'feedback'::regclass) and not i.indisprimary
order by pg_relation_size(i.indexrelid) desc, c.relname
"""
FOREIGN = """
select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint
where contype = 'f' and (confrelid = 'predictions'::regclass or conrelid = 'feedback'::regclass)
"""
PROGRESS = """
select 'index ' || phase, case when tuples_total > 0 then tuples_done else blocks_done end,
    case when tuples_total > 0 then tuples_total else blocks_total end
from pg_stat_progress_create_index where pid = :pid
union all select 'vacuum ' || phase, heap_blks_scanned, heap_blks_total
from pg_stat_progress_vacuum where pid = :pid
union all select 'analyze ' || phase, sample_blks_scanned, sample_blks_total
from pg_stat_progress_analyze where pid = :pid
"""


def timed(fn, repeat: int = 3) -> float:
    """The best of ``repeat`` runs, in seconds (the machine is shared and noisy)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


class Watch:
    """Prints what a long statement of the backend ``pid`` is doing (PostgreSQL's progress
    views: phase, done/total) every :data:`PROGRESS_S` seconds, from a second connection."""

    def __init__(self, engine, pid: int, what: str):
        import threading

        self.engine, self.pid, self.what = engine, pid, what
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.started = time.perf_counter()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        print(f"    {self.what}: {time.perf_counter() - self.started:.0f} s", flush=True)

    def _run(self) -> None:
        import sqlalchemy as sa

        while not self.stop.wait(PROGRESS_S):
            with self.engine.connect() as conn:
                rows = conn.execute(sa.text(PROGRESS), {"pid": self.pid}).all()
            state = ", ".join(f"{p} {d:,}/{t:,}" for p, d, t in rows if t) or "working"
            elapsed = time.perf_counter() - self.started
            print(f"    {self.what}: {state} after {elapsed:.0f} s", flush=True)


def load_connection(engine):
    """One AUTOCOMMIT connection for the whole load, its backend reniced to 15 where this
    process may (PostgreSQL on this machine, run as root or postgres) so the machine's
    other users keep their share; no parallel workers (they would not be reniced)."""
    import sqlalchemy as sa

    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    pid = conn.execute(sa.text("select pg_backend_pid()")).scalar_one()
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 15)
        print(f"    loading through backend {pid}, reniced to 15", flush=True)
    except OSError as exc:
        print(f"    backend {pid} not reniced ({exc})", flush=True)
    for setting in (
        "maintenance_work_mem = '1GB'",
        "max_parallel_maintenance_workers = 0",
        "max_parallel_workers_per_gather = 0",
        "synchronous_commit = off",
    ):
        conn.execute(sa.text(f"set {setting}"))
    return conn, pid


def log_disk(conn) -> tuple[int, int, int]:
    """(bytes of the two tables with their indexes, rows logged, free bytes on the disk
    of PostgreSQL's data directory, -1 where it is not this machine's)."""
    import shutil

    import sqlalchemy as sa

    used = sum(
        conn.execute(sa.text(f"select pg_total_relation_size('{t}')")).scalar_one()
        for t in LOG_TABLES
    )
    rows = conn.execute(sa.text("select coalesce(max(id), 0) from predictions")).scalar_one()
    folder = conn.execute(sa.text("show data_directory")).scalar_one()
    free = shutil.disk_usage(folder).free if os.path.isdir(folder) else -1
    return used, rows, free


def check_disk(conn, size: int, max_gb: float, bytes_per_row: float = 380.0) -> None:
    """Refuses a load the disk cannot hold: the log's size at ``size`` rows from the bytes
    per row measured so far (before any, ``bytes_per_row``: the 1e6 log with its indexes
    as inserted one row at a time took 400), against ``max_gb``; what this load adds, plus
    a third of the whole for the index sorts' temporary files, against the free space."""
    used, rows, free = log_disk(conn)
    per_row = used / rows if rows >= 100_000 else bytes_per_row
    need = per_row * (size - rows) + per_row * size / 3
    print(
        f"    disk: {per_row:.0f} bytes a row so far, the log at {size:,} rows about "
        f"{per_row * size / 1e9:.1f} GB, this load needs about {need / 1e9:.1f} GB "
        f"({free / 1e9:.0f} GB free)",
        flush=True,
    )
    if per_row * size > max_gb * 1e9 or (free >= 0 and need > 0.8 * free):
        raise SystemExit(f"{size:,} rows need more disk than allowed ({max_gb} GB) or free")


def bulk_load(conn, pid: int, start: int, size: int) -> dict:
    """Rows ``start + 1 .. size`` (and their feedback), loaded as a restore would: the
    secondary indexes and the foreign keys set aside, the rows inserted in chunks, then
    each index built in one sort and the keys checked again. Seconds of each part."""
    import sqlalchemy as sa

    indexes = conn.execute(sa.text(SECONDARY)).all()
    keys = conn.execute(sa.text(FOREIGN)).all()
    for table, name, _ in keys:
        conn.execute(sa.text(f'alter table {table} drop constraint "{name}"'))
    for name, _, _ in indexes:
        conn.execute(sa.text(f'drop index "{name}"'))
    times = {"insert_s": _insert_rows(conn, start, size)}
    started = time.perf_counter()
    engine = conn.engine
    for n, (name, definition, _) in enumerate(indexes, 1):
        with Watch(engine, pid, f"index {n}/{len(indexes)} {name}"):
            conn.execute(sa.text(definition))
    for table, name, definition in keys:
        with Watch(engine, pid, f"foreign key {name}"):
            conn.execute(sa.text(f'alter table {table} add constraint "{name}" {definition}'))
    times["index_s"] = time.perf_counter() - started
    started = time.perf_counter()
    for table in LOG_TABLES:
        conn.execute(
            sa.text(
                f"select setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(select coalesce(max(id), 1) from {table}))"
            )
        )
        with Watch(engine, pid, f"vacuum analyze {table}"):
            conn.execute(sa.text(f"vacuum analyze {table}"))
    times["vacuum_s"] = time.perf_counter() - started
    return times


def _insert_rows(conn, start: int, size: int) -> float:
    """Predictions ``start + 1 .. size`` and one feedback row in 20, :data:`LOAD_CHUNK` at
    a time, with a progress line (rows, rate, time left) every :data:`PROGRESS_S` s."""
    import sqlalchemy as sa

    started = last = time.perf_counter()
    done = start
    while done < size:
        stop = min(done + LOAD_CHUNK, size)
        conn.execute(sa.text(INSERT), {"start": done + 1, "stop": stop})
        conn.execute(sa.text(FEEDBACK), {"start": done + 1, "stop": stop})
        done = stop
        now = time.perf_counter()
        if now - last >= PROGRESS_S or done == size:
            rate = (done - start) / (now - started)
            print(
                f"    inserted {done:,}/{size:,} rows, {rate:,.0f} rows/s, about "
                f"{(size - done) / rate:.0f} s left",
                flush=True,
            )
            last = now
    return time.perf_counter() - started


def bench_production_log(sizes: list[int], window: int = 500, max_gb: float = 40.0) -> list[dict]:
    """The drift path's reads at each log size (see :data:`RECIPE_OF`: ``quiet`` is a
    recipe quiet since the log's start, the case where walking the primary key from the
    newest end reads the whole table; one prediction in 20 has a feedback label), each
    size loaded on top of the one before by :func:`bulk_load`; at the largest, each
    read's plan with EXPLAIN (ANALYZE, BUFFERS)."""
    import sqlalchemy as sa

    from modelops.stores.db.engine import migrate
    from modelops.stores.production_log import ProductionLog

    name, url = fresh_database()
    rows = []
    try:
        migrate(url)  # a fresh database: what modelops init does
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
        conn, pid = load_connection(engine)
        with ProductionLog(url) as log:
            done = 0
            for size in sizes:
                check_disk(conn, size, max_gb)
                result = {"rows": size, **bulk_load(conn, pid, done, size)}
                result["disk_gb"] = log_disk(conn)[0] / 1e9
                done = size
                result.update(_drift_path_times(log, window))
                rows.append(result)
                _print_times(result)
            _explain_drift_path(log, window)
        conn.close()
        engine.dispose()
    finally:
        drop_database(name)
        print(f"    dropped {name}; {log_free_gb():.0f} GB free on the disk", flush=True)
    return rows


def log_free_gb() -> float:
    import shutil

    return shutil.disk_usage("/").free / 1e9


LOAD_KEYS = ("insert_s", "index_s", "vacuum_s")


def _print_times(result: dict) -> None:
    print(
        f"  {result['rows']:>11,} rows ({result['disk_gb']:.1f} GB; inserted in "
        f"{result['insert_s']:.0f} s, indexed in {result['index_s']:.0f} s, vacuumed in "
        f"{result['vacuum_s']:.0f} s): "
        + ", ".join(
            f"{k[:-2]} {v * 1000:.1f} ms"
            for k, v in result.items()
            if k[-2:] == "_s" and k not in LOAD_KEYS
        ),
        flush=True,
    )


def _drift_path_reads(log, window: int) -> dict:
    """Each read the drift path makes, for the busy and the quiet recipe, as a callable."""
    reads = {}
    for recipe in ("bench", "quiet"):
        latest = log.latest_prediction_id(recipe)
        ids = log.predictions(recipe, newest=True, limit=window)["id"].tolist()
        # drift_report asset: is a window available at all? (stops counting at the window)
        reads[f"{recipe}_available"] = lambda r=recipe: log.count_since(r, 0, at_most=window)
        # the drift check's window: the newest `window` rows, and their feedback labels
        reads[f"{recipe}_window"] = lambda r=recipe: log.predictions(r, newest=True, limit=window)
        reads[f"{recipe}_labels"] = lambda r=recipe, i=ids: log.labels_for(r, i)
        # production_windows sensor: rows since its cursor (a window ago) and the newest id,
        # counted up to the window; and its first tick over this log (cursor at 0)
        reads[f"{recipe}_sensor"] = lambda r=recipe, c=latest - 1000: log.new_rows(
            {r: c}, at_most=window
        )
        reads[f"{recipe}_first_tick"] = lambda r=recipe: log.new_rows({r: 0}, at_most=window)
    return reads


def _drift_path_times(log, window: int) -> dict:
    """Best-of-3 seconds of each read of :func:`_drift_path_reads`."""
    return {f"{k}_s": timed(read) for k, read in _drift_path_reads(log, window).items()}


def _explain_drift_path(log, window: int) -> None:
    """Each read's statements as the log sends them, with EXPLAIN (ANALYZE, BUFFERS): the
    indexes used, the most rows one scan returned, the pages touched; then the plans."""
    from modelops_tests.fixtures.query_plans import explained

    print(f"    plans of the drift path's reads (window {window}):")
    plans = []
    for name, read in _drift_path_reads(log, window).items():
        for plan in explained(log._engine, read, "analyze, buffers"):
            print(f"      {name}: {plan_summary(plan)}", flush=True)
            # (an id list of 500 makes a line of 4,000 characters: its start will do)
            short = "\n".join(x if len(x) < 200 else x[:196] + " ..." for x in plan.split("\n"))
            plans.append(f"--- {name}\n{short}")
    print("\n".join(plans), flush=True)


def plan_summary(plan: str) -> str:
    """The indexes an EXPLAIN (ANALYZE, BUFFERS) plan uses, whether it scans a table, the
    most rows one scan returned (per loop), the pages it touched, its execution time."""
    import re

    indexes = sorted(set(re.findall(r"(?:using|Bitmap Index Scan on) (\w+)", plan)))
    scans = [int(n) for n in re.findall(r"Scan .*rows=(\d+) loops", plan)]
    top = next((line for line in plan.split("\n") if "Buffers:" in line), "")
    pages = sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", top))
    (ms,) = re.findall(r"Execution Time: (\S+) ms", plan)
    return (
        f"{', '.join(indexes) or 'no index'}{'; SEQ SCAN' if 'Seq Scan' in plan else ''}; "
        f"at most {max(scans, default=0)} rows a scan; {pages} pages; {ms} ms"
    )


# ----------------------------------------------------------------- novelty


def child_novelty(size: int, dim: int = 384, window: int = 500) -> None:
    """In a fresh process (its peak RSS is this size's alone): a float32 reference of
    ``size`` x ``dim`` (as ``reference_embeddings.safetensors`` holds it), the novelty
    threshold as the drift check computes it, then a window scored against it."""
    import resource
    import tracemalloc

    import numpy as np

    from modelops.monitoring import novelty

    tracemalloc.start()
    rng = np.random.default_rng(size)
    reference = rng.standard_normal((size, dim), dtype=np.float32)
    rows = rng.standard_normal((window, dim), dtype=np.float32)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    started = time.perf_counter()
    threshold = novelty.novelty_threshold(reference)
    threshold_s = time.perf_counter() - started
    threshold_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    started = time.perf_counter()
    novelty.nearest_similarity(rows, reference)
    window_s = time.perf_counter() - started
    window_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    sampled = novelty.threshold_sample(size)
    m = size if sampled is None else len(sampled)
    q = novelty.QUANTILE
    mb = 1024 * 1024
    print(
        MARK
        + json.dumps(
            {
                "reference_rows": size,
                "dim": dim,
                "threshold_rows": m,
                "threshold_level_95": [
                    q - 1.96 * (q * (1 - q) / m) ** 0.5,
                    q + 1.96 * (q * (1 - q) / m) ** 0.5,
                ]
                if sampled is not None
                else [q, q],
                "threshold": threshold,
                "reference_mb": held / mb,
                "threshold_s": threshold_s,
                "threshold_peak_mb": threshold_peak / mb,
                "window_rows": window,
                "window_s": window_s,
                "window_peak_mb": window_peak / mb,
                # ru_maxrss is in KiB on Linux: the whole process, interpreter and numpy included
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "dense_would_need_mb": (size * size + 2 * size * dim) * 8 / mb,
            }
        )
    )


def bench_novelty(sizes: list[int]) -> list[dict]:
    rows = []
    for size in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child-novelty", str(size)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        r = child_result(out.stdout)
        rows.append(r)
        low, high = r["threshold_level_95"]
        print(
            f"  {size:>9,} x {r['dim']} reference rows ({r['reference_mb']:6.0f} MB float32): "
            f"threshold over {r['threshold_rows']:,} rows in {r['threshold_s']:6.1f} s "
            f"(its level {low:.2%}-{high:.2%} at 95 %), peak {r['threshold_peak_mb']:6.0f} MB; "
            f"window of {r['window_rows']} in {r['window_s']:5.2f} s, peak "
            f"{r['window_peak_mb']:6.0f} MB; process max RSS {r['max_rss_mb']:6.0f} MB "
            f"(dense: {r['dense_would_need_mb']:,.0f} MB)",
            flush=True,
        )
    return rows


LEGS = ("definitions", "log", "backfill", "novelty")


def summary(results: dict) -> dict:
    """The issue's ratios, from whichever legs ran."""
    out: dict = {}
    defs = {r["recipes"]: r for r in results.get("definitions", [])}
    if 1 in defs and 1000 in defs:
        # a code server's load: its imports and the definitions (not the sensor ticks)
        load = {k: defs[k]["import_s"] + defs[k]["build_s"] for k in (1, 1000)}
        out["definitions_ratio_1000_to_1"] = round(load[1000] / load[1], 2)
        out["definitions_build_only_ratio_1000_to_1"] = round(
            defs[1000]["build_s"] / defs[1]["build_s"], 1
        )
        # with shards: the recipes of the fullest code location at 1,000 (the one measured)
        out["definitions_location_recipes_at_1000"] = defs[1000]["location_recipes"]
        out["definitions_location_rss_mb_at_1000"] = round(defs[1000]["max_rss_mb"])
    ticks = {k: r for k, r in defs.items() if r.get("ticks_s") is not None}
    if 10 in ticks and 1000 in ticks:
        out["sensor_round_ratio_1000_to_10"] = round(
            ticks[1000]["ticks_s"] / ticks[10]["ticks_s"], 2
        )
    for r in results.get("backfill", []):
        out[f"backfill_runs_for_{r['recipes']}_recipes"] = r["runs"]
        if r.get("peak_concurrent_trainings") is not None:
            out[f"backfill_statuses_{r['recipes']}"] = r["statuses"]
            out[f"backfill_processes_{r['recipes']}"] = r["processes"]
            out[f"backfill_execute_s_{r['recipes']}"] = round(r["execute_s"])
            out[f"backfill_cpu_s_{r['recipes']}"] = round(r["cpu_s"])
            out["peak_concurrent_trainings"] = r["peak_concurrent_trainings"]
            out["training_limit"] = r["training_limit"]
        if "relaunch" in r:
            out[f"relaunch_runs_{r['recipes']}"] = r["relaunch"]["statuses"]
    novelty = {r["reference_rows"]: r for r in results.get("novelty", [])}
    for size, r in novelty.items():
        out[f"novelty_peak_mb_at_1e{len(str(size)) - 1}"] = round(r["max_rss_mb"])
    out["leg_s"] = results["leg_s"]
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", help="default 1,10,100,500 (with --all: and 1000)")
    parser.add_argument("--rows", help="default 1e5,1e6,1e7 (with --all: 1e5,1e6)")
    parser.add_argument(
        "--backfill", help="recipe counts, default 10,100 (with --all: 100); '' skips"
    )
    parser.add_argument("--references", default="1e4,1e5,1e6", help="novelty reference rows")
    parser.add_argument(
        "--legs",
        default="definitions,log,backfill",
        help=f"comma-separated, of {', '.join(LEGS)}",
    )
    parser.add_argument("--novelty", action="store_true", help="the novelty leg alone")
    parser.add_argument(
        "--all",
        action="store_true",
        help="every leg, the backfill executed with --fail-one (issue 23's set)",
    )
    parser.add_argument("--no-ticks", action="store_true", help="definitions without sensor ticks")
    parser.add_argument(
        "--per-location",
        type=int,
        default=40,
        help="recipes a code location holds (MODELOPS_RECIPE_SHARD); 0: one location holds all",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="definitions: fresh processes per count (fastest)"
    )
    parser.add_argument("--child-definitions", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--execute",
        action="store_true",
        help="run the backfill leg's runs to the end (else they stay queued)",
    )
    parser.add_argument(
        "--fail-one",
        action="store_true",
        help="with --execute: break the last recipe's data, then relaunch after mending it",
    )
    parser.add_argument("--child-novelty", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    legs = set(LEGS) if args.all else {"novelty"} if args.novelty else set(args.legs.split(","))
    if legs - set(LEGS):
        parser.error(f"unknown legs {sorted(legs - set(LEGS))}; known: {', '.join(LEGS)}")
    if args.fail_one and not (args.execute or args.all):
        parser.error("--fail-one needs --execute")
    if args.backfill == "":
        legs.discard("backfill")
    args.legs = legs
    args.execute = args.execute or args.all
    args.fail_one = args.fail_one or args.all  # issue 23: one failure stops no other run
    args.recipes = args.recipes or ("1,10,100,500,1000" if args.all else "1,10,100,500")
    args.rows = args.rows or ("1e5,1e6" if args.all else "1e5,1e6,1e7")
    args.backfill = args.backfill or ("100" if args.all else "10,100")
    return args


def main() -> int:
    args = parse_args()
    if args.child_definitions:
        child_definitions(not args.no_ticks)
        return 0
    if args.child_novelty is not None:
        child_novelty(args.child_novelty)
        return 0
    started = time.perf_counter()
    results: dict = {"leg_s": {}}
    for leg in LEGS:
        if leg in args.legs:
            leg_started = time.perf_counter()
            run_leg(leg, args, results)
            results["leg_s"][leg] = round(time.perf_counter() - leg_started)
            print(f"   ({leg}: {results['leg_s'][leg]} s)", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    print("RESULTS " + json.dumps(results))
    print(json.dumps(summary(results)))
    return 0


def run_leg(leg: str, args: argparse.Namespace, results: dict) -> None:
    if leg == "definitions":
        run_definitions(
            results,
            [int(c) for c in args.recipes.split(",")],
            not args.no_ticks,
            per_location=args.per_location,
            repeats=args.repeats,
        )
    elif leg == "log":
        run_production_log(results, [int(float(r)) for r in args.rows.split(",")])
    elif leg == "backfill":
        from scale_backfill import bench_backfill

        what = "executed to the end" if args.execute else "submission"
        print(f"3. backfill {what}: one backfill per recipe, through the queued run coordinator")
        counts = [int(c) for c in args.backfill.split(",")]
        results["backfill"] = bench_backfill(counts, args.execute, args.fail_one)
    elif leg == "novelty":
        print("4. novelty scoring: peak memory and time by reference size (fresh process each)")
        results["novelty"] = bench_novelty([int(float(r)) for r in args.references.split(",")])


def run_definitions(
    results: dict, counts: list[int], ticks: bool, *, per_location: int, repeats: int
) -> None:
    what = "one tick of every sensor" if ticks else "no sensor ticks"
    where = f"{per_location} recipes a code location" if per_location else "one code location"
    print(f"1. definitions load + {what}, {where} (fastest of {repeats} fresh processes)")
    results["definitions"] = defs = bench_definitions(counts, ticks, per_location, repeats)
    base = defs[0]
    for row in defs[1:]:
        per = (row["build_s"] + (row["ticks_s"] or 0)) / max(
            base["build_s"] + (base["ticks_s"] or 0), 1e-9
        )
        print(
            f"     {row['recipes']} vs {base['recipes']} recipes: process x"
            f"{row['process_s'] / base['process_s']:.2f}, definitions x"
            f"{row['build_s'] / base['build_s']:.2f}, definitions+ticks x{per:.1f}"
        )


def run_production_log(results: dict, sizes: list[int]) -> None:
    print("2. drift path queries on PostgreSQL")
    results["production_log"] = logs = bench_production_log(sizes)
    first = logs[0]
    for row in logs[1:]:
        ratios = ", ".join(
            f"{k[:-2]} x{row[k] / max(first[k], 1e-9):.1f}"
            for k in row
            if k.endswith("_s") and k not in LOAD_KEYS
        )
        print(f"     {row['rows']:,} vs {first['rows']:,} rows: {ratios}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
