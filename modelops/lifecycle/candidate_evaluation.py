"""The evaluation of a trained candidate as one step: its gated outcome
(``lifecycle.evaluate``), the comparison with the mapped candidate of its taxonomy version
(``lifecycle.taxonomy_change``) and its shadow evidence (``lifecycle.shadow``). A module of
its own: ``taxonomy_change`` imports ``evaluate``, so this step can live in neither."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe
from modelops.lifecycle.evaluate import EvaluationOutcome, evaluate_adapter
from modelops.lifecycle.inference_cost import InferenceMeter
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.shadow import shadow_evidence
from modelops.lifecycle.taxonomy_change import compare_candidates

log = logging.getLogger(__name__)


@dataclass
class CandidateEvaluation:
    """A trained candidate, evaluated: its gated outcome, the comparison with the mapped
    candidate (``versus``, None without one) and its shadow scores on live traffic
    (``shadow``, None when ``modelops serve`` logged none)."""

    outcome: EvaluationOutcome
    versus: dict | None
    shadow: dict | None

    @property
    def winner_id(self) -> int | None:
        """The adapter to promote: the winner against the mapped candidate (None when
        neither passed), else the candidate itself."""
        return self.versus["winner_id"] if self.versus else self.outcome.adapter_id


def evaluate_candidate(
    platform: Platform,
    loaded: LoadedRecipe,
    adapter_id: int,
    mapped_id: int | None = None,
    emit: Emit = log.info,
    meter: InferenceMeter | None = None,
) -> CandidateEvaluation:
    """:func:`evaluate_adapter` (``meter``: how it measures inference cost), then the
    candidate against the mapped candidate ``mapped_id`` on the same test rows (when there
    is one), and its shadow evidence."""
    outcome = evaluate_adapter(platform, adapter_id, emit=emit, loaded=loaded, meter=meter)
    versus = (
        None
        if mapped_id is None
        else compare_candidates(platform, loaded, outcome, mapped_id, emit=emit)
    )
    return CandidateEvaluation(outcome, versus, shadow_evidence(platform, adapter_id))
