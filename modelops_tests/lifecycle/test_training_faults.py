"""Training killed mid-epoch resumes to the same weights; reproduce in a fresh process
with the lineage's thread counts."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess

from modelops.config.recipe import load_recipe
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.train import train_adapter
from modelops_tests.fixtures.processes import REPO, TRAIN_SCRIPT, python, settings_env
from modelops_tests.fixtures.workspace import make_workspace

# LoRA dropout on: the resumed run must also restore torch's RNG state exactly.
RECIPE = {"adapter": {"dropout": 0.1}, "training": {"epochs": 2, "batch_size": 16}}


def train_here(settings, messages: list[str] | None = None):
    platform = Platform.from_settings(settings)
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    emit = messages.append if messages is not None else (lambda _m: None)
    try:
        dataset = build_dataset(platform, loaded, emit=emit)
        return train_adapter(platform, loaded, dataset, emit=emit)
    finally:
        platform.registry.close()


def test_sigkill_mid_epoch_resumes_to_the_same_weights(tiny_catalog, tmp_path):
    uninterrupted = train_here(
        make_workspace(tmp_path / "a", tiny_catalog, rows=240, recipe=RECIPE)
    )

    settings = dataclasses.replace(
        make_workspace(tmp_path / "b", tiny_catalog, rows=240, recipe=RECIPE), checkpoint_steps=2
    )
    process = subprocess.Popen(
        [python(), "-c", TRAIN_SCRIPT],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=settings_env(settings, MODELOPS_CHECKPOINT_STEPS="2"),
    )
    seen = []
    for line in process.stdout:
        seen.append(line.strip())
        if line.startswith("checkpoint saved: epoch 1 step 2/"):
            process.send_signal(signal.SIGKILL)  # mid-epoch, right after a checkpoint
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, seen[-5:]
    assert not any(line.startswith("DONE") for line in seen)

    # Nothing of the killed run is registered or visible in the artifact store.
    platform = Platform.from_settings(settings)
    assert platform.registry.list("demo") == []
    assert not (settings.home / "artifacts" / "adapters").exists()
    checkpoints = list((settings.cache_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and (checkpoints[0] / "state.json").is_file()
    platform.registry.close()

    messages: list[str] = []
    resumed = train_here(settings, messages)
    assert any(
        m.startswith("resuming from checkpoint") and "epoch 1, step" in m for m in messages
    ), messages
    assert resumed.weights_sha256 == uninterrupted.weights_sha256
    assert not (settings.cache_dir / "checkpoints" / checkpoints[0].name).exists()


def test_reproduce_in_a_fresh_process_uses_the_lineage_thread_counts(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog, rows=240, recipe={"training": {"epochs": 1}})
    adapter = train_here(settings)
    assert adapter.lineage["torch_threads"] == 1 and adapter.lineage["blas_threads"] == 1
    # The operator's machine defaults to another thread count: the lineage's one wins.
    done = subprocess.run(
        [
            python(),
            "-c",
            "import sys; from modelops.cli import main; sys.exit(main(sys.argv[1:]))",
            "reproduce",
            str(adapter.id),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=settings_env(settings, MODELOPS_TORCH_THREADS="2"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["identical"] is True
    assert report["reproduced_weights_sha256"] == adapter.weights_sha256
    assert report["torch_threads"] == 1 and report["blas_threads"] == 1
    assert "1 torch threads, 1 BLAS threads" in done.stderr


def test_deterministic_pins_blas_threads():
    from threadpoolctl import threadpool_info

    from modelops.ml.training import deterministic

    with deterministic(seed=1, threads=1, blas_threads=1):
        inside = {p["internal_api"]: p["num_threads"] for p in threadpool_info()}
    assert inside and set(inside.values()) == {1}
