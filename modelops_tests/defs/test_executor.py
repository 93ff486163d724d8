"""The code location's executor comes from ``MODELOPS_EXECUTOR``: every job of the location
as Dagster loads it (the implicit asset job a backfill's runs use, the retraining job)
executes its steps in the run's own process unless told ``multiprocess``; any other name is
refused, naming the variable."""

from __future__ import annotations

import pytest

from modelops.config.errors import InputError
from modelops_tests.fixtures.processes import workspace_env
from modelops_tests.fixtures.workspace import make_workspace


def loaded_executors(monkeypatch, settings, value: str | None) -> set[str]:
    """The executor names of every job of ``modelops.definitions`` loaded with
    ``MODELOPS_EXECUTOR`` set to ``value`` (unset: None)."""
    for name, env_value in workspace_env(settings).items():
        monkeypatch.setenv(name, env_value)
    if value is None:
        monkeypatch.delenv("MODELOPS_EXECUTOR", raising=False)
    else:
        monkeypatch.setenv("MODELOPS_EXECUTOR", value)
    from modelops.definitions import defs

    repository = defs().get_repository_def()
    jobs = repository.get_all_jobs()
    assert any(job.name == "demo__retrain" for job in jobs)
    assert any(job.name.startswith("__ASSET_JOB") for job in jobs)
    return {job.executor_def.name for job in jobs}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "in_process"), ("in_process", "in_process"), ("multiprocess", "multiprocess")],
)
def test_every_job_uses_the_configured_executor(
    tiny_catalog, tmp_path, monkeypatch, value, expected
):
    settings = make_workspace(tmp_path, tiny_catalog)
    assert loaded_executors(monkeypatch, settings, value) == {expected}


def test_an_unknown_executor_is_refused_by_name(tiny_catalog, tmp_path, monkeypatch):
    settings = make_workspace(tmp_path, tiny_catalog)
    with pytest.raises(Exception) as raised:
        loaded_executors(monkeypatch, settings, "k8s")
    chain, error = [], raised.value
    while error is not None:  # Dagster may wrap the error of a definitions function
        chain.append(error)
        error = error.__cause__ or error.__context__
    refusal = next(e for e in chain if isinstance(e, InputError))
    assert refusal.where == "MODELOPS_EXECUTOR"
    assert "'k8s'" in str(refusal) and "in_process, multiprocess" in str(refusal)
