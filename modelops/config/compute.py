"""A recipe's ``compute`` section: what its training steps ask of the cluster.

Used only where each run or step gets its own pod (Dagster's Kubernetes run launcher or
executor): ``modelops.defs.k8s`` turns it into ``dagster-k8s/config`` tags. Locally and
with the Docker launcher it changes nothing, and it is no part of the recipe's
fingerprint (it does not decide the weights).
"""

from __future__ import annotations

from pydantic import Field

from modelops.config.yaml_files import StrictSection

# Kubernetes quantities: 4Gi, 512Mi, 2G, 1500M; CPUs as 2, 0.5 or 500m.
MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$"
CPU_PATTERN = r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$"


class ComputeSettings(StrictSection):
    gpu: int = Field(default=0, ge=0, le=16, description="GPUs for training and evaluation")
    memory: str = Field(
        default="4Gi", pattern=MEMORY_PATTERN, description="memory request for training"
    )
    cpu: str = Field(default="2", pattern=CPU_PATTERN, description="CPU request for training")
