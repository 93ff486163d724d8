"""The linear probe on frozen embeddings: the baseline every adapter must beat, the start
of a fresh head, and the fit of a warm start's head rows for labels it never saw."""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from modelops.config.progress import Emit
from modelops.domain.dataset import encode_labels
from modelops.domain.evaluation import evaluate
from modelops.ml.model import PooledClassifier
from modelops.ml.warm_start import WarmStart


def fit_probe(recipe, feats, dataset, labels):
    """Logistic regression on frozen, pooled, normalized embeddings."""
    started = time.perf_counter()
    y = {s: encode_labels(dataset.split(s), labels) for s in ("train", "validation", "test")}
    present = np.unique(y["train"])
    probe = LogisticRegression(C=recipe.head.probe_c, max_iter=2000)
    probe.fit(feats["train"], y["train"])
    fit_seconds = time.perf_counter() - started

    def full_proba(x: np.ndarray) -> np.ndarray:
        proba = np.zeros((len(x), len(labels)))
        proba[:, present] = probe.predict_proba(x)
        return proba

    result = {"method": "linear_probe", "C": recipe.head.probe_c, "fit_seconds": fit_seconds}
    if len(y["validation"]):
        pred = full_proba(feats["validation"]).argmax(1)
        result["validation_accuracy"] = float(accuracy_score(y["validation"], pred))
        result["validation_macro_f1"] = float(
            f1_score(y["validation"], pred, average="macro", zero_division=0)
        )
    else:
        result["validation_accuracy"] = result["validation_macro_f1"] = float("nan")
    test_proba = full_proba(feats["test"])
    result["test"] = evaluate(y["test"], test_proba, labels).to_dict()
    # Per row, for the paired bootstrap of the beats_baseline gate (domain/gates.py).
    result["test"]["predictions"] = [int(i) for i in test_proba.argmax(1)]
    return (probe, present), result


def init_head(model: PooledClassifier, probe, k: int) -> None:
    lr, present = probe
    weight = torch.zeros_like(model.head.weight)
    bias = torch.full_like(model.head.bias, -10.0)  # labels absent from train start unlikely
    coef = torch.as_tensor(lr.coef_, dtype=weight.dtype)
    intercept = torch.as_tensor(lr.intercept_, dtype=weight.dtype)
    idx = torch.as_tensor(present)
    if coef.shape[0] == 1:  # binary: sklearn keeps one row for the positive class
        coef = torch.cat([-coef / 2, coef / 2])
        intercept = torch.cat([-intercept / 2, intercept / 2])
    weight[idx] = coef
    bias[idx] = intercept
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)


def extend_head(
    model: PooledClassifier, *, train_feats, y_train, warm: WarmStart, labels, recipe, emit: Emit
) -> None:
    """Fit the head rows of labels present in this training split but unseen by the warm
    adapter, on its frozen embeddings, the other rows fixed, by the probe's L2-regularised
    softmax objective; rows weighted by ``warm.sample_weight`` (see ``modelops.ml.training``)."""
    seen = {i for i, name in enumerate(labels) if name in warm.seen_labels}
    new = sorted(set(y_train.tolist()) - seen)
    if not new:
        return
    emit(
        f"fitting head rows of {len(new)} labels the warm start never saw: "
        + ", ".join(labels[i] for i in new[:10])
        + (" ..." if len(new) > 10 else "")
    )
    feats = torch.from_numpy(train_feats).double()
    c = recipe.head.probe_c
    weight = torch.ones(len(y_train), dtype=torch.float64)
    if warm.sample_weight is not None:
        weight = torch.as_tensor(warm.sample_weight, dtype=torch.float64)
    idx = torch.as_tensor(new)
    fixed_w = model.head.weight.detach().double().clone()
    fixed_b = model.head.bias.detach().double().clone()
    w_new = torch.zeros(len(new), feats.shape[1], dtype=torch.float64, requires_grad=True)
    b_new = torch.zeros(len(new), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w_new, b_new], max_iter=500, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        w, b = fixed_w.index_put((idx,), w_new), fixed_b.index_put((idx,), b_new)
        loss = torch.nn.functional.cross_entropy(feats @ w.T + b, y_train, reduction="none")
        total = (loss * weight).sum() * c + 0.5 * (w_new**2).sum()
        total.backward()
        return total

    optimizer.step(objective)
    with torch.no_grad():
        model.head.weight[idx] = w_new.detach().to(model.head.weight.dtype)
        model.head.bias[idx] = b_new.detach().to(model.head.bias.dtype)
