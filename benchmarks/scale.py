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
   evaluation of every sensor against an ephemeral instance (``--no-ticks``: none). It
   also reports which of torch, transformers, peft and evidently were imported. Ratios are
   against 1 recipe.
2. The drift path on PostgreSQL (127.0.0.1:5432, a database created and dropped here)
   with 1e5, 1e6, 1e7 logged predictions, bulk-inserted with ``generate_series``: what
   the drift report asset and the production-window sensor ask the production log (the
   availability count, the newest window, the new-rows count and newest id). The
   Evidently check itself reads the fixed-size window only, so its cost does not depend
   on the table's size; it is not re-measured here (benchmarks/drift_banking77.py).
   Ratios are against 1e5 rows.
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
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
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


def bench_definitions(counts: list[int], ticks: bool = True) -> list[dict]:
    rows = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix=f"scale-{count}-") as tmp:
            env = {**os.environ, **write_recipes(Path(tmp), count), "PYTHONPATH": str(REPO)}
            init_database(env)
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, __file__, "--child-definitions"]
                + ([] if ticks else ["--no-ticks"]),
                env=env,
                cwd=tmp,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            if out.returncode != 0:
                raise RuntimeError(out.stderr[-3000:])
        result = child_result(out.stdout)
        result.update(recipes=count, process_s=wall)
        rows.append(result)
        print(
            f"  {count:4d} recipes: process {wall:6.1f} s = imports {result['import_s']:5.1f} s"
            f" + definitions {result['build_s']:6.2f} s, {result['sensors']} sensors"
            + (f", ticks {result['ticks_s']:6.2f} s" if ticks else "")
            + f"; imported {', '.join(result['heavy_modules']) or 'none'} of torch,"
            " transformers, peft, evidently",
            flush=True,
        )
    return rows


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


INSERT = """
insert into predictions (at, recipe, taxonomy_version, adapter_id, text, text_sha256,
    text_chars, predicted_label, confidence, top_k, source, batch_id, external_id)
select now(),
    case when g <= 10000 and g % 2 = 0 then 'quiet' when g % 10 = 0 then 'other' else 'bench' end,
    'v1', 1, 'request number ' || g, md5(g::text) || md5((g + 1)::text), 20,
    'label_' || (g % 77), random(), '[]'::json, 'benchmark', 'b' || (g / 1000), null
from generate_series(:start, :stop) as g
"""
# One true label for one prediction in 20 (of every recipe), given after the prediction.
FEEDBACK = """
insert into feedback (at, recipe, prediction_id, text, text_sha256, true_label, source)
select p.at, p.recipe, p.id, null, p.text_sha256, p.predicted_label, 'benchmark'
from predictions p where p.id between :start and :stop and p.id % 20 = 0
"""


def timed(fn, repeat: int = 3) -> float:
    """The best of ``repeat`` runs, in seconds (the machine is shared and noisy)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def bench_production_log(sizes: list[int], window: int = 500) -> list[dict]:
    """The drift path's reads at each log size: ``bench`` holds ~85 % of the rows and is
    busy; ``quiet`` has 5,000 rows, all among the first 10,000 ids (a recipe that has been
    quiet since: the case where walking the primary key from the newest end reads the whole
    table); one prediction in 20 has a feedback label."""
    import sqlalchemy as sa

    from modelops.stores.db.engine import migrate
    from modelops.stores.production_log import ProductionLog

    name, url = fresh_database()
    rows = []
    try:
        migrate(url)  # a fresh database: what modelops init does
        with ProductionLog(url) as log:
            engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
            done = 0
            for size in sizes:
                started = time.perf_counter()
                with engine.begin() as conn:
                    conn.execute(sa.text(INSERT), {"start": done + 1, "stop": size})
                    conn.execute(sa.text(FEEDBACK), {"start": done + 1, "stop": size})
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(sa.text("vacuum analyze predictions"))
                    conn.execute(sa.text("vacuum analyze feedback"))
                insert_s = time.perf_counter() - started
                done = size
                result = {"rows": size, "insert_s": insert_s, **_drift_path_times(log, window)}
                rows.append(result)
                print(
                    f"  {size:>10,} rows (inserted in {insert_s:5.1f} s): "
                    + ", ".join(
                        f"{k} {v * 1000:.1f} ms"
                        for k, v in result.items()
                        if k[-2:] == "_s" and k != "insert_s"
                    ),
                    flush=True,
                )
            engine.dispose()
    finally:
        drop_database(name)
    return rows


def _drift_path_times(log, window: int) -> dict:
    """Best-of-3 seconds of each read the drift path makes, for the busy and the quiet recipe."""
    out = {}
    for recipe in ("bench", "quiet"):
        latest = log.latest_prediction_id(recipe)
        ids = log.predictions(recipe, newest=True, limit=window)["id"].tolist()
        # drift_report asset: is a window available at all? (stops counting at the window)
        out[f"{recipe}_available_s"] = timed(lambda r=recipe: log.count_since(r, 0, at_most=window))
        # the drift check's window: the newest `window` rows, and their feedback labels
        out[f"{recipe}_window_s"] = timed(
            lambda r=recipe: log.predictions(r, newest=True, limit=window)
        )
        out[f"{recipe}_labels_s"] = timed(lambda r=recipe, i=ids: log.labels_for(r, i))
        # production_window sensor: new rows since its cursor, newest id
        out[f"{recipe}_sensor_s"] = timed(
            lambda r=recipe, since=latest - 1000: (
                log.count_since(r, since),
                log.latest_prediction_id(r),
            )
        )
    return out


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
        "--all", action="store_true", help="every leg, the backfill executed (issue 23's set)"
    )
    parser.add_argument("--no-ticks", action="store_true", help="definitions without sensor ticks")
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
        run_definitions(results, [int(c) for c in args.recipes.split(",")], not args.no_ticks)
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


def run_definitions(results: dict, counts: list[int], ticks: bool) -> None:
    what = "one tick of every sensor" if ticks else "no sensor ticks"
    print(f"1. definitions load + {what} (fresh process per count)")
    results["definitions"] = defs = bench_definitions(counts, ticks)
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
            if k.endswith("_s") and k != "insert_s"
        )
        print(f"     {row['rows']:,} vs {first['rows']:,} rows: {ratios}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
