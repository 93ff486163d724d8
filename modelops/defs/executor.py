"""The code location's executor: how a run executes its steps, from ``MODELOPS_EXECUTOR``.

``in_process`` (the default) runs a run's steps one after another in the run's own
process: the run launcher already gives each run a process (the default launcher), a
container (the Docker launcher) or a pod (Kubernetes), so a training run imports Dagster,
loads the code location and imports torch once. ``multiprocess`` (Dagster's default) starts
a process per step inside the run, each doing all of that again: for the five training
steps of a tiny model that was 253 s a run against 46 s in process (RESULTS.md, issue 23),
the steps' own work being a few seconds. The training steps form a chain, so a run loses
no parallelism in process; what it gives up is a fresh process (and its memory) per step.
A pod per step (Dagster's ``k8s_job_executor``) needs the code location's executor set in
code (docs/deploy.md).
"""

import dagster as dg

from modelops.config.errors import InputError
from modelops.config.settings import Settings

EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}


def run_executor(name: str) -> dg.ExecutorDefinition:
    """The executor ``MODELOPS_EXECUTOR`` names; refuses any other name."""
    if name not in EXECUTORS:
        raise InputError(
            None,
            "MODELOPS_EXECUTOR",
            f"unknown executor {name!r}: use one of {', '.join(sorted(EXECUTORS))}",
        )
    return EXECUTORS[name]


@dg.definitions
def executor() -> dg.Definitions:
    return dg.Definitions(executor=run_executor(Settings.from_env().executor))
