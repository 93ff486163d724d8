"""Banking77 serving benchmark: ``modelops serve`` against a bare transformers forward pass.

A quick adapter is trained on a ``--limit`` subset of Banking77 train.csv with the
packaged MiniLM (``--epochs`` 1; serving speed does not depend on accuracy), promoted,
and served by ``modelops serve`` in a subprocess on loopback. A bounded load generator
(``--clients`` counts of threads, each sending its next request when the last one
answered, so at most that many requests are in flight) sends requests of 1 and of 32
test.csv texts. The baseline is the same adapter merged into its base
(``merge_and_unload``): the tokenizer, one forward pass, softmax and top-k per batch of
1 or 32 texts, same ``max_length``, in this process, with the server's torch thread count.

Drift control: the measurement runs in ``--rounds`` rounds; each round measures, per
request size, the bare pass and the server at each client count for ``--seconds`` each,
the order alternating between rounds (bare first, then served first). A round's ratio is
the server's best texts/s over the bare texts/s of the same round; the result is the
median of the rounds' ratios with their spread (min, max).

Pinning (``--pin``, on when the machine has more CPUs than ``--threads``): the server
process (event loop, batcher, torch, log writer) is confined to the first ``--threads``
CPUs and the bare pass's thread to the same CPUs, so both sides get the same compute; the
load generator's threads run on the other CPUs, as a remote client would. Without
pinning everything shares every CPU. What was pinned is printed and kept in the JSON.

Memory: the server's RSS with 4 recipes' adapters on the one base (three more recipes
trained on ``--extra-limit`` rows) against its RSS with 1, each after the same warm-up.
``--work DIR`` keeps the trained workspace and reuses it on the next run.

Progress goes to stderr; the last line of stdout is one JSON object with every result.

    .venv/bin/python benchmarks/serve_banking77.py [--limit 1500] [--threads 1]
        [--clients 1 4] [--rounds 5] [--seconds 5] [--extra 3] [--extra-limit 300]
        [--pin auto|on|off] [--work DIR]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modelops.config.recipe import Recipe, load_recipe  # noqa: E402
from modelops.config.settings import Settings  # noqa: E402
from modelops.lifecycle.dataset import build_dataset  # noqa: E402
from modelops.lifecycle.fetch import FetchedAdapter  # noqa: E402
from modelops.lifecycle.platform import Platform  # noqa: E402
from modelops.lifecycle.train import train_adapter  # noqa: E402
from modelops.ml.model import load_classifier, pool  # noqa: E402
from modelops.stores.db.engine import migrate  # noqa: E402
from modelops.stores.registry_records import SERVING  # noqa: E402

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "banking77"
STARTED = time.perf_counter()
TARGETS = {"throughput_ratio_at_32": 0.9, "memory_ratio_4_vs_1": 1.3}
TRAINING = {"learning_rate": 5e-4, "batch_size": 32, "max_length": 64, "seed": 13}
TOP_K = 3


def emit(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def label_name(category: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", category.lower())


def write_workspace(root: Path, train: pd.DataFrame, labels: list[str], args) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    tax = root / "taxonomies" / "banking77" / "v1.yaml"
    tax.parent.mkdir(parents=True, exist_ok=True)
    doc = {"name": "banking77", "version": "v1", "labels": [{"name": n} for n in labels]}
    tax.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    (root / "recipes").mkdir(exist_ok=True)
    for i, name in enumerate(recipe_names(args)):
        rows = train.sample(n=min(args.limit if i == 0 else args.extra_limit, len(train)),
                            random_state=args.seed + i)  # fmt: skip
        rows[["text", "label"]].to_csv(root / "data" / f"{name}.csv", index=False)
        recipe = {
            "name": name,
            "data": {"sources": [{"path": f"../data/{name}.csv"}], "validation_fraction": 0.05,
                     "test_fraction": 0.1},
            "taxonomy": "../taxonomies/banking77/v1.yaml",
            "base_model": "minilm@stable",
            "adapter": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"]},
            "head": {"pooling": "mean", "init": "probe"},
            "training": {**TRAINING, "epochs": args.epochs, "seed": TRAINING["seed"] + i},
            "gates": {"min_macro_f1": 0.0, "beat_baseline": False},
        }  # fmt: skip
        (root / "recipes" / f"{name}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


def workspace_settings(root: Path, threads: int) -> Settings:
    home = root / ".modelops"
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'modelops.db'}",
        artifacts_uri=str(home / "artifacts"),
        s3_endpoint_url=None,
        recipes_dir=root / "recipes",
        catalog_path=REPO / "catalog" / "base_models.yaml",
        cache_dir=home / "cache",
        torch_threads=threads,
        user="benchmark",
    )


def recipe_names(args) -> list[str]:
    return ["banking77_serve"] + [f"banking77_serve_{i}" for i in range(2, 2 + args.extra)]


def trained_adapters(plat: Platform, settings: Settings, args) -> dict[str, int]:
    """Each recipe's serving adapter: reused when the workspace has one, else trained."""
    ids = {}
    for name in recipe_names(args):
        version = plat.registry.alias(name, SERVING)
        if version is not None:
            ids[name] = version.id
            emit(f"{name}: reusing adapter {version.id}")
            continue
        loaded = load_recipe(settings.recipes_dir / f"{name}.yaml")
        dataset = build_dataset(plat, loaded, emit=emit)
        t0 = time.perf_counter()
        ids[name] = train_adapter(plat, loaded, dataset, emit=emit).id
        plat.registry.promote(ids[name], who="benchmark", why="serving benchmark", evidence={},
                              force=True)  # fmt: skip
        emit(f"{name}: adapter {ids[name]} trained in {time.perf_counter() - t0:.0f} s")
    return ids


# --------------------------------------------------------------------------- baseline


def bare_model(plat: Platform, adapter_id: int):
    """The adapter merged into its base: tokenizer, merged encoder, head, pooling, max_length."""
    version = plat.registry.get(adapter_id)
    with FetchedAdapter(plat, version) as fetched:
        base = plat.resolve_base_by_sha256(fetched.manifest["base_model"]["sha256"])
        tokenizer, model, _ = load_classifier(fetched.path, base.path)
        recipe = Recipe.model_validate(fetched.manifest["recipe_snapshot"]["recipe"])
    encoder = model.encoder.merge_and_unload().eval()
    return tokenizer, encoder, model.head.eval(), model.pooling, recipe.training.max_length


@torch.inference_mode()
def bare_forward(bare, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize, forward, pool, head, softmax and top-k of ``texts``."""
    tokenizer, encoder, head, pooling, max_length = bare
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")  # fmt: skip
    hidden = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    pooled = torch.nn.functional.normalize(
        pool(hidden.last_hidden_state, enc["attention_mask"], pooling), dim=-1
    )
    top = torch.topk(torch.softmax(head(pooled), dim=-1), TOP_K, dim=-1)
    return top.values.numpy(), top.indices.numpy()


def measure_bare(bare, texts: list[str], size: int, seconds: float) -> dict:
    latencies, n, i = [], 0, 0
    bare_forward(bare, texts[:size])  # warm-up
    end = time.perf_counter() + seconds
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() < end:
        batch = [texts[(i + j) % len(texts)] for j in range(size)]
        i += size
        t0 = time.perf_counter()
        bare_forward(bare, batch)
        latencies.append(time.perf_counter() - t0)
        n += 1
    result = summarize(latencies, n, size, time.perf_counter() - start)
    result["cpu_ms_per_text"] = (time.process_time() - cpu) * 1000 / max(1, n * size)
    return result


def summarize(latencies: list[float], requests: int, size: int, wall: float) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": requests,
        "requests_per_s": requests / wall,
        "texts_per_s": requests * size / wall,
        "p50_ms": statistics.median(ms) if ms else float("nan"),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else float("nan"),
        "latencies_ms": ms,
    }


# --------------------------------------------------------------------------- server


def start_server(settings: Settings, recipes: list[str], port: int, threads: int, log: Path,
                 cpus: set[int] | None):  # fmt: skip
    env = {**os.environ, "MODELOPS_HOME": str(settings.home),
           "MODELOPS_DATABASE_URL": settings.database_url,
           "MODELOPS_ARTIFACTS": settings.artifacts_uri,
           "MODELOPS_RECIPES": str(settings.recipes_dir),
           "MODELOPS_CATALOG": str(settings.catalog_path),
           "MODELOPS_TORCH_THREADS": str(threads), "PYTHONPATH": str(REPO)}  # fmt: skip
    code = "import sys; from modelops.cli import main; sys.exit(main())"
    only = [a for r in recipes for a in ("--recipe", r)]
    args = [sys.executable, "-c", code, "serve", "--port", str(port), *only]

    def pin() -> None:  # the whole server process (every thread it starts) on these CPUs
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            preexec_fn=pin)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"modelops serve exited ({proc.returncode}); see {log}")
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"modelops serve not ready after 300 s; see {log}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of every thread of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, recipe: str, texts: list[str], size: int, clients: int, seconds: float,
         cpus: set[int] | None = None, pid: int | None = None):  # fmt: skip
    """``clients`` threads, each sending its next request when the last one answered;
    with ``pid``, the server's CPU time per text too."""
    latencies: list[float] = []
    errors: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)  # this thread only (Linux)
        i = k * 997
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                batch = [texts[(i + j) % len(texts)] for j in range(size)]
                i += size
                t0 = time.perf_counter()
                r = http.post(f"{url}/v1/recipes/{recipe}/predict",
                              json={"texts": batch, "top_k": TOP_K})  # fmt: skip
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                elif len(r.json()["predictions"]) != size:
                    errors.append("wrong number of predictions")
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start, cpu = time.perf_counter(), cpu_seconds(pid) if pid else 0.0
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    result = summarize(latencies, len(latencies), size, wall)
    result["errors"] = len(errors)
    if pid:
        texts_done = max(1, len(latencies) * size)
        result["cpu_ms_per_text"] = (cpu_seconds(pid) - cpu) * 1000 / texts_done
    if errors:
        emit(f"errors: {errors[:3]}")
    return result


# --------------------------------------------------------------------------- rounds


def rounds(args, bare, url, pid, recipe, texts, torch_cpus, client_cpus) -> list[dict]:
    """Interleaved rounds: per size, the bare pass and the server at each client count."""
    out = []
    for r in range(args.rounds):
        row: dict = {"round": r + 1, "load_average": os.getloadavg()}
        for size in (1, 32):
            phases = ["bare", *[f"served_{c}" for c in args.clients]]
            if r % 2:
                phases.reverse()
            for phase in phases:
                if phase == "bare":
                    if torch_cpus is not None:
                        os.sched_setaffinity(0, torch_cpus)
                    run = measure_bare(bare, texts, size, args.seconds)
                else:
                    clients = int(phase.split("_")[1])
                    load(url, recipe, texts, size, clients, 0.5, client_cpus)  # warm-up
                    run = load(url, recipe, texts, size, clients, args.seconds, client_cpus,
                               pid)  # fmt: skip
                row.setdefault(str(size), {})[phase] = run
            served = {p: v for p, v in row[str(size)].items() if p != "bare"}
            bare_tps = row[str(size)]["bare"]["texts_per_s"]
            row[str(size)]["ratio"] = {p: v["texts_per_s"] / bare_tps for p, v in served.items()}
            row[str(size)]["ratio_best"] = max(row[str(size)]["ratio"].values())
            bare_cpu = row[str(size)]["bare"]["cpu_ms_per_text"]
            row[str(size)]["cpu_ratio"] = {p: bare_cpu / v["cpu_ms_per_text"]
                                           for p, v in served.items()}  # fmt: skip
            emit(f"round {r + 1}, {size} texts/request: bare {bare_tps:.1f} texts/s, "
                 + ", ".join(f"{p} {v['texts_per_s']:.1f} ({row[str(size)]['ratio'][p]:.2f}x)"
                             for p, v in served.items()))  # fmt: skip
        out.append(row)
    return out


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "rounds": values}  # fmt: skip


def pooled(runs: list[dict]) -> dict:
    """Throughput and latency percentiles over every round of one phase."""
    ms = sorted(x for r in runs for x in r["latencies_ms"])
    return {
        "texts_per_s_median": statistics.median(r["texts_per_s"] for r in runs),
        "cpu_ms_per_text_median": statistics.median(r["cpu_ms_per_text"] for r in runs),
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "requests": len(ms),
        "errors": sum(r.get("errors", 0) for r in runs),
    }


def pinning(args) -> tuple[set[int] | None, set[int] | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    wanted = args.pin == "on" or (args.pin == "auto" and len(cpus) > args.threads)
    if not wanted:
        return None, None, f"none: server, torch and load generator share CPUs {cpus}"
    if len(cpus) <= args.threads:
        raise SystemExit(f"--pin on needs more than --threads {args.threads} CPUs, have {cpus}")
    torch_cpus, client_cpus = set(cpus[: args.threads]), set(cpus[args.threads :])
    text = (f"server process (event loop, batcher, torch {args.threads} thread(s), log writer) "
            f"and the bare pass's thread on CPUs {sorted(torch_cpus)}; load generator threads "
            f"on CPUs {sorted(client_cpus)}")  # fmt: skip
    return torch_cpus, client_cpus, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=1500, help="training rows of the adapter")
    parser.add_argument("--extra", type=int, default=3, help="more recipes for the memory check")
    parser.add_argument("--extra-limit", type=int, default=300, help="their training rows")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase of a round")
    parser.add_argument("--pin", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--work", type=Path, help="workspace to keep and reuse (default: new)")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch_cpus, client_cpus, pinned = pinning(args)
    emit(f"pinning: {pinned}")
    load_start = os.getloadavg()
    train, test = (pd.read_csv(args.data / f"{s}.csv") for s in ("train", "test"))
    train["label"] = [label_name(c) for c in train["category"]]
    labels = sorted(set(train["label"]))
    texts = test["text"].sample(frac=1.0, random_state=args.seed).tolist()

    work = args.work or Path(tempfile.mkdtemp(prefix="serve-banking77-"))
    write_workspace(work, train, labels, args)
    settings = workspace_settings(work, args.threads)
    migrate(settings.database_url)  # what modelops init does
    plat = Platform.from_settings(settings)
    names = recipe_names(args)
    ids = trained_adapters(plat, settings, args)
    main_recipe = names[0]

    if torch_cpus is not None:
        os.sched_setaffinity(0, torch_cpus)  # the main thread: model loading and bare pass
    bare = bare_model(plat, ids[main_recipe])
    proc, url = start_server(settings, [main_recipe], args.port, args.threads,
                             work / "serve1.log", torch_cpus)  # fmt: skip
    try:
        load(url, main_recipe, texts, 32, 1, 2, client_cpus)
        rss_one = rss_mb(proc.pid)
        measured = rounds(args, bare, url, proc.pid, main_recipe, texts, torch_cpus,
                          client_cpus)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(60)
    del bare

    # four recipes on the one base: memory after the same warm-up
    proc, url = start_server(settings, names, args.port + 1, args.threads,
                             work / "serve4.log", torch_cpus)  # fmt: skip
    try:
        for name in names:
            load(url, name, texts, 32, 1, 2, client_cpus)
        rss_four = rss_mb(proc.pid)
        adapters = httpx.get(f"{url}/v1/adapters").json()
    finally:
        proc.terminate()
        proc.wait(60)

    phases = ["bare", *[f"served_{c}" for c in args.clients]]
    summary = {
        str(size): {
            "ratio_best": spread([r[str(size)]["ratio_best"] for r in measured]),
            "ratio_by_clients": {
                p: spread([r[str(size)]["ratio"][p] for r in measured]) for p in phases[1:]
            },
            "cpu_ratio_by_clients": {
                p: spread([r[str(size)]["cpu_ratio"][p] for r in measured]) for p in phases[1:]
            },  # fmt: skip
            "phases": {p: pooled([r[str(size)][p] for r in measured]) for p in phases},
        }
        for size in (1, 32)
    }
    for row in measured:  # keep the JSON short: percentiles only
        for size in ("1", "32"):
            for p in phases:
                row[size][p].pop("latencies_ms")
    memory_ratio = rss_four / rss_one
    ratio32 = summary["32"]["ratio_best"]["median"]
    versions = {p: importlib.metadata.version(p) for p in ("torch", "transformers", "peft",
                                                           "starlette", "uvicorn")}  # fmt: skip
    result = {
        "benchmark": "serve_banking77",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": summary,
        "rounds": measured,
        "rss_mb": {"one_adapter": rss_one, "four_adapters": rss_four},
        "memory_ratio_4_vs_1": memory_ratio,
        "bases_loaded_with_four": adapters["bases"],
        "adapters_loaded_with_four": [a["adapter_id"] for a in adapters["adapters"]],
        "targets": TARGETS,
        "met": {"throughput_ratio_at_32": ratio32 >= TARGETS["throughput_ratio_at_32"],
                "memory_ratio_4_vs_1": memory_ratio < TARGETS["memory_ratio_4_vs_1"]},
        "pinning": pinned,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "versions": versions,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_start": load_start, "load_average_end": os.getloadavg()},
        "command": shlex.join(sys.argv),
        "seconds": time.perf_counter() - STARTED,
    }  # fmt: skip
    for size in ("1", "32"):
        s = summary[size]
        emit(f"{size} texts/request: ratio served/bare median {s['ratio_best']['median']:.2f} "
             f"(rounds {', '.join(f'{x:.2f}' for x in s['ratio_best']['rounds'])}); CPU ratio "
             + ", ".join(f"{p} {v['median']:.2f}" for p, v in s["cpu_ratio_by_clients"].items())
             + "; "
             + "; ".join(f"{p} {v['texts_per_s_median']:.1f} texts/s p50 {v['p50_ms']:.0f} "
                         f"p99 {v['p99_ms']:.0f} ms" for p, v in s["phases"].items()))  # fmt: skip
    emit(f"memory 4/1 adapters {memory_ratio:.2f}; pinning: {pinned}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
