"""Banking77 serving benchmark: ``modelops serve`` against a bare transformers forward pass.

A quick adapter is trained on a ``--limit`` subset of Banking77 train.csv with the
packaged MiniLM (``--epochs`` 1; serving speed does not depend on accuracy), promoted,
and served by ``modelops serve`` in a subprocess on loopback. A bounded load generator
(1 and ``--clients`` threads, each sending its next request when the last one answered)
sends requests of 1 and of 32 test.csv texts; requests/s, texts/s and p50/p99 latency
are measured after a warm-up (the ratio takes the better of the two client counts). The
baseline, in the same run, is the same adapter merged into its base (``merge_and_unload``)
with the tokenizer and one forward pass per batch of 1 or 32 texts, in this process, with
the same torch thread count, run before and after the server (the better of the two
counts). Memory: the server's RSS with 4 recipes' adapters on the one base (three more
recipes trained on ``--extra-limit`` rows) against its RSS with 1, each after the same
warm-up, and the bases the server reports loaded.

Progress goes to stderr; the last line of stdout is one JSON object with every result.

    .venv/bin/python benchmarks/serve_banking77.py [--limit 1500] [--threads 2]
        [--clients 4] [--seconds 20] [--extra 3] [--extra-limit 300]
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

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "banking77"
STARTED = time.perf_counter()
TARGETS = {"throughput_ratio_at_32": 0.9, "memory_ratio_4_vs_1": 1.3}
TRAINING = {"learning_rate": 5e-4, "batch_size": 32, "max_length": 64, "seed": 13}


def emit(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def label_name(category: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", category.lower())


def write_workspace(root: Path, train: pd.DataFrame, labels: list[str], args) -> Settings:
    (root / "data").mkdir(parents=True)
    tax = root / "taxonomies" / "banking77" / "v1.yaml"
    tax.parent.mkdir(parents=True)
    doc = {"name": "banking77", "version": "v1", "labels": [{"name": n} for n in labels]}
    tax.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    (root / "recipes").mkdir()
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
    home = root / ".modelops"
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'modelops.db'}",
        artifacts_uri=str(home / "artifacts"),
        s3_endpoint_url=None,
        recipes_dir=root / "recipes",
        catalog_path=REPO / "catalog" / "base_models.yaml",
        cache_dir=home / "cache",
        torch_threads=args.threads,
        user="benchmark",
    )


def recipe_names(args) -> list[str]:
    return ["banking77_serve"] + [f"banking77_serve_{i}" for i in range(2, 2 + args.extra)]


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
def bare_forward(bare, texts: list[str]) -> np.ndarray:
    tokenizer, encoder, head, pooling, max_length = bare
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")  # fmt: skip
    hidden = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    pooled = torch.nn.functional.normalize(
        pool(hidden.last_hidden_state, enc["attention_mask"], pooling), dim=-1
    )
    return torch.softmax(head(pooled), dim=-1).numpy()


def measure_bare(bare, texts: list[str], size: int, seconds: float) -> dict:
    latencies, n, i = [], 0, 0
    bare_forward(bare, texts[:size])  # warm-up
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        batch = [texts[(i + j) % len(texts)] for j in range(size)]
        i += size
        t0 = time.perf_counter()
        bare_forward(bare, batch)
        latencies.append(time.perf_counter() - t0)
        n += 1
    return summarize(latencies, n, size, time.perf_counter() - start)


def summarize(latencies: list[float], requests: int, size: int, wall: float) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": requests,
        "requests_per_s": requests / wall,
        "texts_per_s": requests * size / wall,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
    }


# --------------------------------------------------------------------------- server


def start_server(settings: Settings, recipes: list[str], port: int, threads: int, log: Path):
    env = {**os.environ, "MODELOPS_HOME": str(settings.home),
           "MODELOPS_DATABASE_URL": settings.database_url,
           "MODELOPS_ARTIFACTS": settings.artifacts_uri,
           "MODELOPS_RECIPES": str(settings.recipes_dir),
           "MODELOPS_CATALOG": str(settings.catalog_path),
           "MODELOPS_TORCH_THREADS": str(threads), "PYTHONPATH": str(REPO)}  # fmt: skip
    code = "import sys; from modelops.cli import main; sys.exit(main())"
    only = [a for r in recipes for a in ("--recipe", r)]
    args = [sys.executable, "-c", code, "serve", "--port", str(port), *only]
    proc = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, recipe: str, texts: list[str], size: int, clients: int, seconds: float):
    """``clients`` threads, each sending its next request when the last one answered."""
    latencies: list[float] = []
    errors: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        i = k * 997
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                batch = [texts[(i + j) % len(texts)] for j in range(size)]
                i += size
                t0 = time.perf_counter()
                r = http.post(f"{url}/v1/recipes/{recipe}/predict", json={"texts": batch})
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    result = summarize(latencies, len(latencies), size, wall)
    result["errors"] = len(errors)
    if errors:
        emit(f"errors: {errors[:3]}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=1500, help="training rows of the adapter")
    parser.add_argument("--extra", type=int, default=3, help="more recipes for the memory check")
    parser.add_argument("--extra-limit", type=int, default=300, help="their training rows")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    train, test = (pd.read_csv(args.data / f"{s}.csv") for s in ("train", "test"))
    train["label"] = [label_name(c) for c in train["category"]]
    labels = sorted(set(train["label"]))
    texts = test["text"].sample(frac=1.0, random_state=args.seed).tolist()

    work = Path(tempfile.mkdtemp(prefix="serve-banking77-"))
    settings = write_workspace(work, train, labels, args)
    plat = Platform.from_settings(settings)
    names = recipe_names(args)
    ids = {}
    for name in names:
        loaded = load_recipe(settings.recipes_dir / f"{name}.yaml")
        dataset = build_dataset(plat, loaded, emit=emit)
        t0 = time.perf_counter()
        ids[name] = train_adapter(plat, loaded, dataset, emit=emit).id
        plat.registry.promote(ids[name], who="benchmark", why="serving benchmark", evidence={},
                              force=True)  # fmt: skip
        emit(f"{name}: adapter {ids[name]} trained in {time.perf_counter() - t0:.0f} s")
    main_recipe = names[0]

    bare = bare_model(plat, ids[main_recipe])
    baseline = {size: [measure_bare(bare, texts, size, args.seconds)] for size in (1, 32)}
    emit(f"bare forward: {json.dumps({k: v[0] for k, v in baseline.items()})}")

    # one recipe: memory after a warm-up (as for four below), then speed
    proc, url = start_server(settings, [main_recipe], args.port, args.threads, work / "serve1.log")
    try:
        load(url, main_recipe, texts, 32, 1, 2)
        rss_one = rss_mb(proc.pid)
        served = {}
        for clients in sorted({1, args.clients}):
            for size in (1, 32):
                run = load(url, main_recipe, texts, size, clients, args.seconds)
                served.setdefault(size, {})[clients] = run
                emit(f"served, {size} texts/request, {clients} clients: {json.dumps(run)}")
    finally:
        proc.terminate()
        proc.wait(60)
    for size in (1, 32):  # the baseline again, now the server is gone
        baseline[size].append(measure_bare(bare, texts, size, args.seconds))
    del bare

    # four recipes on the one base: memory after the same warm-up
    proc, url = start_server(settings, names, args.port + 1, args.threads, work / "serve4.log")
    try:
        for name in names:
            load(url, name, texts, 32, 1, 2)
        rss_four = rss_mb(proc.pid)
        adapters = httpx.get(f"{url}/v1/adapters").json()
    finally:
        proc.terminate()
        proc.wait(60)

    best = {size: max(runs, key=lambda r: r["texts_per_s"]) for size, runs in baseline.items()}
    ratio = {
        size: max(r["texts_per_s"] for r in served[size].values()) / best[size]["texts_per_s"]
        for size in (1, 32)
    }
    memory_ratio = rss_four / rss_one
    versions = {p: importlib.metadata.version(p) for p in ("torch", "transformers", "peft",
                                                           "starlette", "uvicorn")}  # fmt: skip
    result = {
        "benchmark": "serve_banking77",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "served": served,
        "bare_forward_runs": baseline,
        "bare_forward_best": best,
        "throughput_ratio": ratio,
        "rss_mb": {"one_adapter": rss_one, "four_adapters": rss_four},
        "memory_ratio_4_vs_1": memory_ratio,
        "bases_loaded_with_four": adapters["bases"],
        "adapters_loaded_with_four": [a["adapter_id"] for a in adapters["adapters"]],
        "targets": TARGETS,
        "met": {"throughput_ratio_at_32": ratio[32] >= TARGETS["throughput_ratio_at_32"],
                "memory_ratio_4_vs_1": memory_ratio < TARGETS["memory_ratio_4_vs_1"]},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "versions": versions,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_start": load_start, "load_average_end": os.getloadavg()},
        "command": shlex.join(sys.argv),
        "seconds": time.perf_counter() - STARTED,
    }  # fmt: skip
    emit(f"throughput ratio served/bare: 1 text {ratio[1]:.2f}, 32 texts {ratio[32]:.2f}; "
         f"memory 4/1 adapters {memory_ratio:.2f}")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
