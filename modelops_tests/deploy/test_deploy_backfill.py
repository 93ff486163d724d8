"""docker/deploy_backfill.py's pure parts (the deploy test's backfill stage, issue 23): the
generated recipes load as recipes on the data and taxonomy the derived image writes, the
peak concurrency agrees with a count at every instant, the training limit is the one
docker/dagster.yaml configures, and the stage's summary says when something went wrong."""

from __future__ import annotations

import importlib.util
import json
import posixpath
import random
import re
from pathlib import Path

import yaml

from modelops.config.recipe import load_recipes
from modelops.demo.files import write_demo_dataset, write_taxonomy
from modelops.demo.generator import DemoKnobs

DOCKER = Path(__file__).resolve().parents[2] / "docker"
_spec = importlib.util.spec_from_file_location("deploy_backfill", DOCKER / "deploy_backfill.py")
backfill = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(backfill)


def test_recipe_names_are_unique_sorted_and_padded():
    for count in (1, 3, 100, 1001):
        names = backfill.recipe_names(count, "scale")
        assert len(set(names)) == count
        assert names == sorted(names)
        assert all(re.fullmatch(r"scale\d{3,}", n) for n in names)
        assert len({len(n) for n in names}) == 1


def test_generated_recipes_load_on_the_files_the_image_writes(tmp_path):
    """The recipes, written as the derived image holds them, with the data set and the
    taxonomy version at the paths its Dockerfile writes (rows and seed read from it)."""
    root = tmp_path / "opt" / "modelops"
    (root / "recipes").mkdir(parents=True)
    for name, text in backfill.recipe_files(4, "bench").items():
        (root / "recipes" / name).write_text(text, encoding="utf-8")
    script = backfill.dockerfile("localhost/code:tag", "bench", rows=60)
    out = re.search(r"--out (/opt/modelops/\S+) --rows (\d+) --seed (\d+)", script)
    taxonomy = re.search(
        r"write_taxonomy\(Path\('(/opt/modelops/\S+)'\), '(\w+)', '(v\d+)'", script
    )
    data_path = root / out.group(1).removeprefix("/opt/modelops/")
    knobs = DemoKnobs(n=int(out.group(2)), seed=int(out.group(3)))
    write_demo_dataset(data_path, knobs)
    write_taxonomy(
        root / taxonomy.group(1).removeprefix("/opt/modelops/"),
        taxonomy.group(2),
        taxonomy.group(3),
    )

    loaded = load_recipes(root / "recipes")

    assert [r.name for r in loaded] == backfill.recipe_names(4, "bench")
    assert {(r.taxonomy.name, r.data_version) for r in loaded} == {("bench", "v1")}
    assert {r.recipe.training.epochs for r in loaded} == {1}
    assert not any(r.recipe.gates.beat_baseline for r in loaded)
    assert {tuple(r.source_uris()) for r in loaded} == {(str(data_path),)}
    assert script.startswith("FROM localhost/code:tag\n")
    assert "COPY recipes/ /opt/modelops/recipes/" in script
    assert script.rstrip().endswith("USER modelops")  # the code image's user again


def test_recipe_files_are_the_documents_as_json():
    files = backfill.recipe_files(2, "scale")
    for name, text in files.items():
        document = yaml.safe_load(text)
        assert document == json.loads(text)
        assert document["name"] == name.removesuffix(".yaml")
        # relative to the recipe file in /opt/modelops/recipes/, as the Dockerfile writes
        resolved = posixpath.normpath(posixpath.join("/opt/modelops/recipes", document["taxonomy"]))
        assert resolved == "/opt/modelops/taxonomies/scale/v1.yaml"


def brute_force_peak(intervals, now):
    """The most intervals open at any start instant (an end at that instant closed)."""
    closed = [(s, e if e is not None else now) for s, e in intervals]
    return max((sum(s <= t < e for s, e in closed) for t, _ in closed), default=0)


def test_peak_concurrency_matches_a_count_at_every_start():
    rng = random.Random(5)
    for _ in range(200):
        intervals = []
        for _ in range(rng.randint(1, 12)):
            start = rng.randint(0, 20)
            end = start + rng.randint(1, 8) if rng.random() > 0.1 else None
            intervals.append((float(start), None if end is None else float(end)))
        assert backfill.peak_concurrency(intervals, now=30.0) == brute_force_peak(intervals, 30.0)


def test_back_to_back_runs_do_not_overlap():
    assert backfill.peak_concurrency([(0.0, 5.0), (5.0, 9.0), (9.0, 12.0)], now=20.0) == 1
    assert backfill.peak_concurrency([(0.0, 5.0), (4.0, 9.0), (8.0, None)], now=20.0) == 2


def test_training_limit_is_the_one_dagster_yaml_configures():
    text = (DOCKER / "dagster.yaml").read_text(encoding="utf-8")
    limits = yaml.safe_load(text)["run_coordinator"]["config"]["tag_concurrency_limits"]
    (expected,) = [x["limit"] for x in limits if x["key"] == backfill.TRAINING_TAG]
    assert backfill.training_limit(text) == expected
    assert backfill.training_limit(text, key="modelops/nothing") is None


def fake_stage(statuses: list[str], extra_run_for: str | None = None):
    """A backfill report over len(statuses) recipes, one run each, runs two at a time."""
    names = backfill.recipe_names(len(statuses), "scale")
    report = {"launched": names, "already_done": [], "backfills": [], "status": "COMPLETED"}
    rows, containers = {}, {}
    for i, (name, status) in enumerate(zip(names, statuses, strict=True)):
        run_ids = [f"{i:08x}-0000-4000-8000-000000000000"]
        if name == extra_run_for:
            run_ids.append(f"{i:08x}-1111-4000-8000-000000000000")
        report["backfills"].append({"recipe": name, "runs": [{"run_id": r} for r in run_ids]})
        for run_id in run_ids:
            start = 10.0 * (i // 2)
            rows[run_id] = {"status": status, "start": start, "end": start + 9.0, "tagged": True}
            containers[f"c-{run_id}"] = f'dagster api execute_run {{"run_id": "{run_id}"}}'
    return report, rows, containers


def test_summary_of_a_clean_backfill():
    report, rows, containers = fake_stage(["SUCCESS"] * 5)
    result = backfill.summarize(report, rows, containers, limit=2, wall_s=30.0, count=5)
    assert result["runs"] == result["recipes_with_one_run"] == 5
    assert result["runs_with_one_container"] == result["run_containers_seen"] == 5
    assert result["peak_concurrent_trainings"] == 2
    assert result["run_s_mean"] == 9.0
    assert result["mean_concurrent_trainings"] == 1.5  # 45 run-seconds in 30 s
    assert result["all_success"] and result["ok"]


def test_summary_flags_a_failed_run_a_second_run_and_a_missing_container():
    report, rows, containers = fake_stage(["SUCCESS", "FAILURE", "SUCCESS"], "scale002")
    del containers[next(iter(containers))]
    result = backfill.summarize(report, rows, containers, limit=2, wall_s=30.0, count=3)
    assert result["statuses"] == {"SUCCESS": 3, "FAILURE": 1}
    assert result["runs"] == 4 and result["recipes_with_one_run"] == 2
    assert result["runs_with_one_container"] == 3
    assert not result["all_success"] and not result["ok"]


def test_summary_flags_a_peak_above_the_limit():
    report, rows, containers = fake_stage(["SUCCESS"] * 4)
    for row in rows.values():
        row["start"], row["end"] = 0.0, 9.0  # all four at once
    result = backfill.summarize(report, rows, containers, limit=2, wall_s=9.0, count=4)
    assert result["peak_concurrent_trainings"] == 4
    assert not result["ok"]
