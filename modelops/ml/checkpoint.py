"""Training checkpoints, so a training process killed mid-epoch resumes where it stopped
and ends with the same weights (bit for bit) as a run that was never interrupted.

A checkpoint is one directory (the caller keys it by the lineage's fingerprint, under the
local cache): ``state.safetensors`` with every tensor the loop carries (the trainable
weights, the optimizer's moments, the best epoch's snapshot, torch's RNG state) and
``state.json`` with the rest (epoch and step, the batch order's RNG state at the start of
that epoch, the running loss, the history, the scheduler). Both are written to a temporary
sibling and renamed into place, so a kill while saving leaves the previous checkpoint.
Nothing is unpickled: tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from modelops.config.progress import Emit

log = logging.getLogger(__name__)

TENSORS_FILE = "state.safetensors"
INFO_FILE = "state.json"
FORMAT = 1


@dataclass(frozen=True)
class Checkpointer:
    """Where the checkpoints of one training run go, and how often (optimizer steps)."""

    directory: Path
    every_steps: int = 50

    def load(self, expected: dict[str, Any], emit: Emit = log.info) -> tuple[dict, dict] | None:
        """``(tensors, info)`` of the last checkpoint when it matches ``expected`` (the
        run's shape: total steps, trainable names); None when there is none."""
        info_path, tensors_path = self.directory / INFO_FILE, self.directory / TENSORS_FILE
        if not info_path.is_file() or not tensors_path.is_file():
            return None
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            tensors = load_file(str(tensors_path))
        except (OSError, ValueError) as exc:
            emit(f"checkpoint {self.directory} unreadable ({exc}); training from the start")
            return None
        if info.get("format") != FORMAT or any(info.get(k) != v for k, v in expected.items()):
            emit(f"checkpoint {self.directory} is of another run; training from the start")
            return None
        return tensors, info

    def save(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        """Replace the checkpoint atomically (a kill mid-save keeps the previous one)."""
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.directory.with_name(f".{self.directory.name}.tmp-{uuid.uuid4().hex}")
        tmp.mkdir()
        try:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                str(tmp / TENSORS_FILE),
            )
            (tmp / INFO_FILE).write_text(json.dumps({"format": FORMAT, **info}), encoding="utf-8")
            old = None
            if self.directory.exists():
                old = self.directory.with_name(f".{self.directory.name}.old-{uuid.uuid4().hex}")
                os.rename(self.directory, old)
            os.rename(tmp, self.directory)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def clear(self) -> None:
        """Remove the checkpoint (the run finished and its adapter is stored)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        for stale in self.directory.parent.glob(f".{self.directory.name}.*"):
            shutil.rmtree(stale, ignore_errors=True)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    """The optimizer's per-parameter state as flat tensors, and its param groups (JSON)."""
    state = optimizer.state_dict()
    tensors = {
        f"opt/{index}/{name}": value if torch.is_tensor(value) else torch.tensor(value)
        for index, values in state["state"].items()
        for name, value in values.items()
    }
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
        for group in state["param_groups"]
    ]
    return tensors, groups


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
