"""Linear probe reading a continuous direction out of frozen audio embeddings.

Choice: ridge regression from the L2-normalised audio embedding to
(sin φ, cos φ) of the folded azimuth φ ∈ [−90°, 90°]; the prediction is
atan2(sin, cos), folded back onto [−90°, 90°]. Regressing the unit-circle pair
instead of φ itself keeps the read-out smooth near ±90° and bounded without
clipping. The intercept is not penalised (features and targets are centred).
The ridge strength is chosen on the *training* set only, by exact leave-one-out
error over a fixed grid (smallest alpha among equal errors), so the probe never
sees the scored set. The probe is fit on ``doa_val`` (validation rooms) and
scored on ``doa`` (test rooms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..spatial.conventions import fold_azimuth
from .metrics import ArrayLike, l2_normalize, mean_absolute_folded_error_deg

__all__ = ["DEFAULT_ALPHAS", "RidgeDoaProbe", "doa_probe_mae_deg"]

#: Ridge strengths searched by leave-one-out on the training set.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-4, 3, 15))


def _features(embeds: ArrayLike) -> np.ndarray:
    x = l2_normalize(embeds).numpy()
    if x.ndim != 2:
        raise ValueError(f"Probe embeddings must be (N, D), got shape {x.shape}.")
    return x


def _angle_targets(folded_deg: ArrayLike, n: int) -> np.ndarray:
    phi = np.asarray(fold_azimuth(np.asarray(folded_deg, dtype=np.float64)), dtype=np.float64).reshape(-1)
    if phi.shape[0] != n:
        raise ValueError(f"Got {n} embeddings but {phi.shape[0]} azimuths; give one azimuth per clip.")
    rad = np.radians(phi)
    return np.stack([np.sin(rad), np.cos(rad)], axis=1)


@dataclass
class RidgeDoaProbe:
    """Ridge regression probe: embedding (D,) → folded azimuth in degrees.

    ``alphas``: candidate ridge strengths; the one with the lowest exact
    leave-one-out squared error on the training data is kept in ``alpha_``.
    After :meth:`fit`: ``coef_`` (D, 2), ``intercept_`` (2,), ``alpha_``.
    """

    alphas: Sequence[float] = DEFAULT_ALPHAS
    alpha_: float | None = field(default=None, init=False)
    coef_: np.ndarray | None = field(default=None, init=False, repr=False)
    intercept_: np.ndarray | None = field(default=None, init=False, repr=False)

    def fit(self, embeds: ArrayLike, folded_azimuth_deg: ArrayLike) -> "RidgeDoaProbe":
        """Fit on embeddings (N, D) and their azimuths (N,) in degrees (folded inside)."""
        x = _features(embeds)
        n = x.shape[0]
        if n < 3:
            raise ValueError(f"The DoA probe needs at least 3 training clips, got {n}; build a larger doa_val set.")
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError("alphas must be a non-empty sequence of positive ridge strengths.")
        y = _angle_targets(folded_azimuth_deg, n)
        x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - x_mean, y - y_mean
        u, s, vt = np.linalg.svd(xc, full_matrices=False)
        uty = u.T @ yc
        best: tuple[float, float] | None = None
        for alpha in sorted(float(a) for a in self.alphas):
            shrink = s**2 / (s**2 + alpha)
            fitted = u @ (shrink[:, None] * uty)
            # Hat-matrix diagonal including the (unpenalised) intercept.
            leverage = 1.0 / n + (u**2) @ shrink
            loo = (yc - fitted) / np.clip(1.0 - leverage, 1e-12, None)[:, None]
            err = float((loo**2).sum(axis=1).mean())
            if best is None or err < best[1]:
                best = (alpha, err)
        self.alpha_ = best[0]
        self.coef_ = vt.T @ ((s / (s**2 + self.alpha_))[:, None] * uty)
        self.intercept_ = y_mean - x_mean @ self.coef_
        return self

    def predict(self, embeds: ArrayLike) -> np.ndarray:
        """Predicted folded azimuths (N,) in degrees, in [−90°, 90°]."""
        if self.coef_ is None or self.intercept_ is None:
            raise RuntimeError("RidgeDoaProbe.predict called before fit; fit it on the doa_val embeddings first.")
        x = _features(embeds)
        if x.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"Probe was fit on {self.coef_.shape[0]}-d embeddings, got {x.shape[1]}-d.")
        sc = x @ self.coef_ + self.intercept_
        angle = np.degrees(np.arctan2(sc[:, 0], sc[:, 1]))
        return np.asarray(fold_azimuth(angle), dtype=np.float64).reshape(-1)


def doa_probe_mae_deg(
    train_embeds: ArrayLike,
    train_azimuth_deg: ArrayLike,
    test_embeds: ArrayLike,
    test_azimuth_deg: ArrayLike,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> float:
    """Fit :class:`RidgeDoaProbe` on the training pairs, return its mean absolute
    folded-azimuth error (degrees) on the test pairs."""
    probe = RidgeDoaProbe(alphas=alphas).fit(train_embeds, train_azimuth_deg)
    return mean_absolute_folded_error_deg(probe.predict(test_embeds), test_azimuth_deg)
