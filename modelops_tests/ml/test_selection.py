"""The choice of the kept epoch (modelops.ml.selection), on made-up validation predictions."""

from __future__ import annotations

import numpy as np
import torch

from modelops.ml.selection import Selector

Y = np.arange(400) % 4


def predictions(right: int) -> np.ndarray:
    """Right on the first ``right`` rows, wrong on the others."""
    pred = Y.copy()
    pred[right:] = (Y[right:] + 1) % 4
    return pred


def selector(rule: str, scores: list[int]) -> Selector:
    out = Selector(Y, rule, 0.95)
    for epoch, right in enumerate(scores):
        out.add(epoch, predictions(right), {"w": torch.full((2,), float(epoch))})
    return out


def test_bootstrap_keeps_the_last_epoch_over_a_gain_within_the_noise() -> None:
    kept, report = selector("bootstrap", [370, 374, 371]).choose()
    assert kept == 2
    assert report["rule"] == "bootstrap" and report["kept_epoch"] == 2
    assert "no earlier candidate beat it" in report["reason"]
    one = report["candidates"]["1"]
    assert one["gain_over_last"] == 3 / 400 and one["gain_lower_bound"] <= 0
    # the legacy rule follows that noise
    assert selector("best", [370, 374, 371]).choose()[0] == 1


def test_bootstrap_falls_back_to_an_earlier_epoch_that_is_clearly_better() -> None:
    kept, report = selector("bootstrap", [370, 390, 300]).choose()
    assert kept == 1
    assert report["candidates"]["1"]["gain_lower_bound"] > 0
    assert "epoch 1 beat the last epoch (2)" in report["reason"]
    # the start (epoch 0) also competes, and the larger significant gain wins
    assert selector("bootstrap", [395, 390, 300]).choose()[0] == 0


def test_state_round_trip_for_checkpoints() -> None:
    first = selector("bootstrap", [370, 390, 300])
    again = Selector(Y, "bootstrap", 0.95)
    again.restore(first.state_tensors(), ["w"])
    assert again.choose() == first.choose()
    assert torch.equal(again.weights[1]["w"], first.weights[1]["w"])
