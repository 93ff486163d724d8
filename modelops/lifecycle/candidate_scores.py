"""The candidate's test-split scores, taken by the training step while the model is in
memory and stored in the adapter artifact, so that the evaluation step reads them instead
of loading the base and the adapter again.

The adapter directory gets ``evaluation/``:

- ``probabilities.safetensors``: the candidate's probabilities of the test rows and, when
  the champion the evaluation compares with is on the same base, the champion's, scored
  on the base already in memory (``modelops.lifecycle.fetch.attached``);
- ``scores.json``: what they are: the digest of the test texts and the ``max_length``
  they were scored with, the labels of each model's outputs, the scoring latency per 32
  texts (``modelops.lifecycle.cost``), and the champion's adapter id and hashes; with the
  recipe's ``gates.weigh_cost``, both models' inference cost as the ``gain_worth_cost``
  gate weighs it (``inference_cost``: timed here in interleaved rounds, the two adapters
  switched on the one base in memory, ``modelops.lifecycle.inference_cost``).

The evaluation uses the candidate's scores when the digest and ``max_length`` match its
test rows, and the champion's when the champion it compares with is that very adapter;
otherwise it loads what it needs, as without stored scores. JSON and safetensors only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from modelops.config.fingerprint import sha256_json
from modelops.config.progress import Emit
from modelops.domain.cost_gate import InferenceCost
from modelops.lifecycle.cost import timed_scoring
from modelops.lifecycle.fetch import ATTACHED_ADAPTER, FetchedAdapter, LoadedAdapter, attached
from modelops.lifecycle.inference_cost import measure_inference
from modelops.lifecycle.platform import Platform
from modelops.ml.adapter_methods import is_peft
from modelops.ml.catalog import ResolvedBase
from modelops.ml.training import TrainedModel
from modelops.stores.registry_records import AdapterVersion

FOLDER = "evaluation"
PROBABILITIES_FILE = "probabilities.safetensors"
SCORES_FILE = "scores.json"
FORMAT = 1


@dataclass(frozen=True)
class Scored:
    """One model's scores of the test rows."""

    probs: np.ndarray
    labels: list[str]
    """The labels of the probabilities' columns."""
    latency: float
    """Scoring seconds per 32 texts (``modelops.lifecycle.cost.timed_scoring``)."""


@dataclass(frozen=True)
class ChampionScores:
    """The champion's scores of the candidate's test rows, and which adapter it was."""

    adapter_id: int
    weights_sha256: str
    artifact_sha256: str
    scored: Scored
    costs: dict[str, InferenceCost] | None = None
    """``candidate`` and ``champion``: their inference cost, measured beside each other."""

    def are_of(self, version: AdapterVersion) -> bool:
        """Whether these are the scores of ``version`` (same id, weights and artifact)."""
        return (
            self.adapter_id == version.id
            and self.weights_sha256 == version.weights_sha256
            and self.artifact_sha256 == version.artifact_sha256
        )


@dataclass(frozen=True)
class StoredScores:
    rows_sha256: str
    """The digest of the test texts, in order (:func:`rows_digest`)."""
    max_length: int
    candidate: Scored
    champion: ChampionScores | None = None


def rows_digest(texts: list[str]) -> str:
    return sha256_json(list(texts))


def find_champion(
    registry, recipe: str, taxonomy_version: str
) -> tuple[AdapterVersion | None, bool]:
    """The champion a candidate of ``taxonomy_version`` is compared with: that version's,
    else the serving one; and whether it is of another taxonomy version (its predictions
    are then mapped onto the candidate's labels)."""
    champion = registry.alias(recipe, "champion", taxonomy_version=taxonomy_version)
    if champion is not None:
        return champion, False
    champion = registry.alias(recipe, "champion")  # the serving one
    return champion, champion is not None and champion.taxonomy_version != taxonomy_version


def score_for_evaluation(
    platform: Platform,
    trained: TrainedModel,
    out: Path,
    *,
    base: ResolvedBase,
    champion: AdapterVersion | None,
    texts: list[str],
    max_length: int,
    emit: Emit,
    weigh_cost: bool = False,
) -> None:
    """While the model is in memory: its scores of the test rows ``texts`` and those of
    ``champion`` (an adapter on the same ``base``, the one in memory, put beside the trained
    one), stored in the adapter directory ``out``; with ``weigh_cost``, both models'
    inference cost too. A champion that cannot be scored here is left out: the evaluation
    then loads it, and says so if it fails too."""
    if not texts:
        return
    candidate = LoadedAdapter(trained.tokenizer, trained.model, trained.labels)
    scored = Scored(*timed_scoring(candidate, texts, max_length))
    champion_scores = None
    if champion is not None:
        champion_scores = _champion_scores(
            platform, trained, base, champion, (texts, max_length), emit, weigh_cost
        )
    write_scores(out, StoredScores(rows_digest(texts), max_length, scored, champion_scores))


def _champion_scores(
    platform: Platform,
    trained: TrainedModel,
    base: ResolvedBase,
    champion: AdapterVersion,
    rows: tuple[list[str], int],
    emit: Emit,
    weigh_cost: bool,
) -> ChampionScores | None:
    texts, max_length = rows
    encoder = trained.model.encoder
    own = encoder.active_adapter if is_peft(encoder) else None
    try:
        with (
            FetchedAdapter(platform, champion) as fetched,
            attached(trained, fetched, base) as adapter,
        ):
            scored = Scored(*timed_scoring(adapter, texts, max_length))
            costs = None
            if weigh_cost:
                candidate = LoadedAdapter(trained.tokenizer, trained.model, trained.labels)
                models = {
                    "candidate": Switched(candidate, encoder, own),
                    "champion": Switched(adapter, encoder, _attached_name(adapter, encoder)),
                }
                costs = measure_inference(models, texts, max_length)
    except Exception as exc:  # any failure: the evaluation tries on its own
        emit(f"champion {champion.id} not scored beside the candidate: {type(exc).__name__}: {exc}")
        return None
    emit(f"champion {champion.id} scored beside the candidate on the base in memory")
    return ChampionScores(
        champion.id, champion.weights_sha256, champion.artifact_sha256, scored, costs
    )


def _attached_name(adapter: LoadedAdapter, encoder) -> str | None:
    """The champion's PEFT name on the candidate's encoder; None when it was loaded on a
    base of its own (a full fine-tune on either side, ``modelops.lifecycle.fetch.attached``)."""
    return ATTACHED_ADAPTER if adapter.model.encoder is encoder else None


@dataclass(frozen=True)
class Switched:
    """One of two adapters on one base in memory: scoring makes it the active one (None:
    a model with an encoder of its own, nothing to switch)."""

    loaded: LoadedAdapter
    encoder: object
    adapter: str | None

    @property
    def model(self):
        return self.loaded.model

    def predict_proba(self, texts: list[str], max_length: int) -> np.ndarray:
        if self.adapter is not None:
            self.encoder.set_adapter(self.adapter, inference_mode=True)
        return self.loaded.predict_proba(texts, max_length)


def write_scores(adapter_dir: Path, stored: StoredScores) -> None:
    folder = adapter_dir / FOLDER
    folder.mkdir(exist_ok=True)
    tensors = {"candidate": _tensor(stored.candidate.probs)}
    doc = {
        "format": FORMAT,
        "rows_sha256": stored.rows_sha256,
        "max_length": stored.max_length,
        "candidate": _describe(stored.candidate),
        "champion": None,
    }
    if stored.champion is not None:
        champion = stored.champion
        tensors["champion"] = _tensor(champion.scored.probs)
        doc["champion"] = {
            "adapter_id": champion.adapter_id,
            "weights_sha256": champion.weights_sha256,
            "artifact_sha256": champion.artifact_sha256,
            **_describe(champion.scored),
            "inference_cost": {
                name: {
                    "seconds_per_32": list(cost.seconds_per_32),
                    "memory_bytes": cost.memory_bytes,
                }
                for name, cost in (champion.costs or {}).items()
            }
            or None,
        }
    save_file(tensors, str(folder / PROBABILITIES_FILE))
    (folder / SCORES_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def read_scores(adapter_dir: Path, texts: list[str], max_length: int) -> StoredScores | None:
    """The scores stored in ``adapter_dir`` if they are of ``texts`` at ``max_length``;
    None without any (an adapter trained before they were stored, a mapped adapter)."""
    folder = adapter_dir / FOLDER
    if not (folder / SCORES_FILE).is_file():
        return None
    doc = json.loads((folder / SCORES_FILE).read_text(encoding="utf-8"))
    if (
        doc.get("format") != FORMAT
        or doc["rows_sha256"] != rows_digest(texts)
        or doc["max_length"] != max_length
    ):
        return None
    tensors = load_file(str(folder / PROBABILITIES_FILE))
    champion = None
    if doc["champion"] is not None:
        info = doc["champion"]
        champion = ChampionScores(
            int(info["adapter_id"]),
            info["weights_sha256"],
            info["artifact_sha256"],
            _scored(tensors["champion"], info),
            _costs(info.get("inference_cost")),
        )
    return StoredScores(
        doc["rows_sha256"],
        doc["max_length"],
        _scored(tensors["candidate"], doc["candidate"]),
        champion,
    )


def _costs(doc: dict | None) -> dict[str, InferenceCost] | None:
    if not doc:
        return None
    return {
        name: InferenceCost(tuple(float(s) for s in cost["seconds_per_32"]), cost["memory_bytes"])
        for name, cost in doc.items()
    }


def _tensor(probs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(probs))


def _describe(scored: Scored) -> dict:
    return {"labels": list(scored.labels), "latency_seconds_per_32": float(scored.latency)}


def _scored(tensor: torch.Tensor, info: dict) -> Scored:
    return Scored(tensor.numpy(), list(info["labels"]), float(info["latency_seconds_per_32"]))
