"""The ``teacher_champions`` sensor: a teacher recipe's new serving champion requests the
distillation of each student that follows it, once per teacher champion, not for a paused
or pinned student, nor for one whose champion already learnt from that teacher. No
training: champions are placeholder registry rows."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from modelops.config.recipe import load_recipes
from modelops.defs.build import build_definitions
from modelops.defs.keys import TAG_MODE, TAG_TEACHER, TEACHER_SENSOR
from modelops.defs.partitions import sync_partitions
from modelops.defs.resources import build_resources
from modelops.lifecycle.platform import Platform
from modelops_tests.fixtures.registry_rows import adapter_fields
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

STUDENT = {"distillation": {"teacher": "teacher"}}
PAUSED = {"name": "paused", "retraining": {"on_teacher_change": False}, **STUDENT}
PINNED = {"name": "pinned", "distillation": {"teacher": "teacher", "adapter_id": 1}}


class Ticks:
    def __init__(self, settings, instance):
        self.instance = instance
        self.defs = build_definitions(settings)
        self.resources = build_resources(settings)
        self.platform = Platform.from_settings(settings)
        self.cursor: str | None = None
        sync_partitions(instance, load_recipes(settings.recipes_dir), self.platform.catalog)

    def tick(self):
        sensor = self.defs.resolve_sensor_def(TEACHER_SENSOR)
        with (
            dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursor,
                resources=self.resources,
                definitions=self.defs,
            ) as context,
            dg.partition_loading_context(dynamic_partitions_store=self.instance),
        ):
            data = sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data

    def serve(self, recipe: str, lineage: dict | None = None, n: int = 0) -> int:
        registry = self.platform.registry
        fields = adapter_fields(recipe=recipe, lineage=lineage or {}, weights_sha256=f"{n:064x}")
        adapter = registry.register(**fields)
        registry.promote(adapter.id, who="tester", why="test", evidence={}, force=True)
        return adapter.id

    def state(self) -> dict:
        return json.loads(self.cursor)["recipes"]


@pytest.fixture
def ticks(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog, recipe=STUDENT)
    for overrides in ({"name": "teacher"}, PAUSED, PINNED):
        write_recipe(tmp_path, overrides)
    with dg.instance_for_test() as instance:
        yield Ticks(settings, instance)


def jobs_of(data) -> dict[str, dg.RunRequest]:
    return {r.job_name: r for r in data.run_requests or []}


def test_one_sensor_follows_the_unpinned_students(ticks):
    sensor = ticks.defs.resolve_sensor_def(TEACHER_SENSOR)
    assert sorted(j.name for j in sensor.jobs) == ["demo__retrain", "paused__retrain"]
    first = ticks.tick()
    assert not first.run_requests and "no new teacher champion" in str(first.skip_message)


def test_a_new_teacher_champion_requests_the_distillation_once(ticks):
    first = ticks.serve("teacher", n=1)
    data = ticks.tick()
    (request,) = jobs_of(data).values()  # demo; paused is paused
    assert request.job_name == "demo__retrain"
    assert request.run_key == f"demo-teacher-{first}"
    assert request.partition_key == "tiny@r1|v1"  # no champion yet: its data's version
    assert request.tags[TAG_TEACHER] == str(first) and request.tags[TAG_MODE] == "full"
    assert ticks.state()["paused"] == {}  # paused: its entry is not moved
    assert ticks.state()["demo"] == {"teacher_adapter_id": first}
    again = ticks.tick()
    assert not again.run_requests

    student = ticks.serve("demo", n=2)  # the student's champion, then the teacher moves
    second = ticks.serve("teacher", n=3)
    (request,) = jobs_of(ticks.tick()).values()
    assert request.run_key == f"demo-teacher-{second}"
    assert request.partition_key == "tiny@r1|v1"  # the student champion's version and base
    assert ticks.platform.registry.alias("demo", "champion").id == student
    assert not ticks.tick().run_requests


def test_a_paused_student_waits_and_follows_when_resumed(ticks, tmp_path):
    teacher = ticks.serve("teacher", n=1)
    data = ticks.tick()
    assert [r.job_name for r in data.run_requests] == ["demo__retrain"]
    assert ticks.state()["paused"] == {}  # not moved while paused
    write_recipe(tmp_path, {**PAUSED, "retraining": {"on_teacher_change": True}})
    ticks.defs = build_definitions(ticks.platform.settings)  # the code location reloads
    data = ticks.tick()
    assert [r.run_key for r in data.run_requests] == [f"paused-teacher-{teacher}"]


def test_no_request_when_the_student_already_learnt_from_that_teacher(ticks):
    teacher = ticks.serve("teacher", n=1)
    ticks.serve("demo", lineage={"distillation": {"teacher_adapter_id": teacher}}, n=2)
    data = ticks.tick()
    assert not data.run_requests
    assert f"already distilled from teacher adapter {teacher}" in str(data.skip_message)
    assert ticks.state()["demo"] == {"teacher_adapter_id": teacher}


def test_a_run_key_launched_before_is_not_requested_again(ticks):
    teacher = ticks.serve("teacher", n=1)
    ticks.instance.add_run(
        dg.DagsterRun(job_name="x", tags={"dagster/run_key": f"demo-teacher-{teacher}"})
    )
    data = ticks.tick()
    assert not data.run_requests
    assert "already launched" in str(data.skip_message)
