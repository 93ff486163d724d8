"""A probe, not a platform feature (issue 24): does outlier exposure train a champion
whose out-of-scope score separates Banking77's held-out intents better?

Outlier exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019) adds to the loss
``weight * mean CE(uniform, softmax(logits))`` over outlier texts. Banking77 has no
out-of-scope texts to expose, so the outliers are made from the training rows
(``OE_MODE``):

- ``splice``: synthetic texts, the first half of one training text's tokens joined to the
  second half of a text of another intent (inside the first text's special tokens),
  ``OE_SHARE`` outliers per training row of a batch. The held-out intents the champion
  misses look like mixtures of two known ones (``top_up_by_card_charge``), which the
  splices imitate.
- ``leave_out``: real texts of intents left out for one step. Each step draws
  ``OE_LEAVE_OUT`` (0.15) of the intents; rows of the others are classified among those
  others only, rows of a left-out intent are pushed to a uniform prediction over them:
  the model is taught, intent by intent, to be unsure of a text whose intent is not among
  the ones it chooses from, which is what an unknown intent is at serving time.

Both draw from a seeded generator (``OE_SEED``). The probe replaces the training loop's
step (``modelops.ml.fit._Loop._step``) in this process and runs ``drift_banking77.py`` with
the remaining arguments, so the champion is trained, calibrated and stored as the
platform would, and ``--evidence`` on the same ``--home`` measures it. Measured in
benchmarks/RESULTS.md (issue 24); the platform has neither.

    OE_MODE=splice OE_WEIGHT=0.5 OE_SHARE=0.5 .venv/bin/python \\
        benchmarks/outlier_exposure_probe.py --data ../shared/data/banking77 --home DIR \\
        --variant v2_all_r16_cos_ls --epochs 2 --train-only
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import modelops.ml.fit as fit  # noqa: E402
from modelops.ml.model import collate  # noqa: E402

MODE = os.environ.get("OE_MODE", "splice")
WEIGHT = float(os.environ.get("OE_WEIGHT", "0.5"))
LEAVE_OUT = float(os.environ.get("OE_LEAVE_OUT", "0.15"))
SHARE = float(os.environ.get("OE_SHARE", "0.5"))
RNG = np.random.default_rng(int(os.environ.get("OE_SEED", "0")))


def splice(first: list[int], second: list[int]) -> list[int]:
    """``first``'s opening token, the first half of its inner tokens, the second half of
    ``second``'s, ``first``'s closing token."""
    a, b = first[1:-1], second[1:-1]
    return [first[0], *a[: max(1, len(a) // 2)], *b[len(b) // 2 :], first[-1]]


def outliers(encoded: list[list[int]], labels: torch.Tensor) -> list[list[int]]:
    """``SHARE`` splices per row, each of two rows with different labels."""
    out = []
    for _ in range(round(len(encoded) * SHARE)):
        for _try in range(10):
            i, j = RNG.integers(0, len(encoded), 2)
            if labels[i] != labels[j]:
                out.append(splice(encoded[i], encoded[j]))
                break
    return out


def step(self, batch: list[int], loss_sum: float, seen: int) -> tuple[float, int]:
    """The loop's step with the outliers in the batch and their term in the loss."""
    job = self.job
    encoded = [job.train_ids[i] for i in batch]
    labels = job.train_labels[batch]
    extra = outliers(encoded, labels)
    ids, mask = collate(encoded + extra, job.pad)
    logits = job.model(ids, mask)
    loss = torch.nn.functional.cross_entropy(
        logits[: len(batch)], labels, label_smoothing=job.settings.label_smoothing
    )
    if extra:
        uniform = -torch.log_softmax(logits[len(batch) :], dim=1).mean(dim=1).mean()
        loss = loss + WEIGHT * uniform
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()
    self.scheduler.step()
    return loss_sum + loss.item() * len(batch), seen + len(batch)


def leave_out_step(self, batch: list[int], loss_sum: float, seen: int) -> tuple[float, int]:
    """The loop's step with a random ``LEAVE_OUT`` share of the intents left out: rows of
    the other intents are classified among those only, rows of a left-out intent are
    pushed to a uniform prediction over the others (their real texts as the outliers)."""
    job = self.job
    labels = job.train_labels[batch]
    ids, mask = collate([job.train_ids[i] for i in batch], job.pad)
    logits = job.model(ids, mask)
    classes = logits.shape[1]
    out = torch.zeros(classes, dtype=torch.bool)
    out[RNG.choice(classes, max(1, round(classes * LEAVE_OUT)), replace=False)] = True
    left = out[labels]
    kept = logits[:, ~out]
    remap = torch.cumsum((~out).long(), 0) - 1  # a kept intent's column among the kept
    loss = torch.zeros(())
    if (~left).any():
        loss = (
            torch.nn.functional.cross_entropy(
                kept[~left], remap[labels[~left]], label_smoothing=job.settings.label_smoothing
            )
            * (~left).float().mean()
        )
    if left.any():
        uniform = -torch.log_softmax(kept[left], dim=1).mean(dim=1).mean()
        loss = loss + WEIGHT * uniform * left.float().mean()
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()
    self.scheduler.step()
    return loss_sum + loss.item() * len(batch), seen + len(batch)


if __name__ == "__main__":
    fit._Loop._step = {"splice": step, "leave_out": leave_out_step}[MODE]
    import drift_banking77

    sys.exit(drift_banking77.main(sys.argv[1:]))
