"""``dagster-k8s/config`` tags: what each training step asks of Kubernetes.

With Dagster's Kubernetes run launcher every run gets a pod, and with its
``k8s_job_executor`` every step does. Both read the ``dagster-k8s/config`` tag (a JSON
string: ``container_config`` is merged into the pod's container): the run launcher from
the run's tags (the retraining job's tags), the step executor from each asset's op tags.
The recipe's ``compute`` section (``modelops.config.compute``) sets the numbers: the
adapter and evaluation steps ask for its memory and CPU, and for its GPUs when
``compute.gpu`` is above 0; building the dataset and moving the champion ask for little.
Elsewhere (``dagster dev``, the Docker launcher) the tags are inert.
"""

from __future__ import annotations

import json

from modelops.config.compute import ComputeSettings

K8S_CONFIG_TAG = "dagster-k8s/config"
"""The tag the dagster-k8s run launcher and step executor read."""
GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource name of NVIDIA's Kubernetes device plugin."""
LIGHT = {"cpu": "250m", "memory": "1Gi"}
"""What the light steps (dataset, champion) ask for."""


def container_resources(compute: ComputeSettings, *, heavy: bool) -> dict:
    """Kubernetes ``resources`` of a step's container: requests, and limits for memory
    and GPUs (a GPU can only be given as a limit)."""
    if not heavy:
        return {"requests": dict(LIGHT), "limits": {"memory": LIGHT["memory"]}}
    limits: dict[str, str | int] = {"memory": compute.memory}
    if compute.gpu:
        limits[GPU_RESOURCE] = compute.gpu
    return {"requests": {"cpu": compute.cpu, "memory": compute.memory}, "limits": limits}


def k8s_tags(compute: ComputeSettings, *, heavy: bool) -> dict[str, str]:
    """``{"dagster-k8s/config": "<json>"}`` for a step (``heavy``: training or
    evaluation) or, with ``heavy=True``, for a whole run of the training assets."""
    config = {"container_config": {"resources": container_resources(compute, heavy=heavy)}}
    return {K8S_CONFIG_TAG: json.dumps(config, sort_keys=True)}
