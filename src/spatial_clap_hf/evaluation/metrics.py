"""Evaluation metrics of the paper's Table 1, as plain functions on embeddings.

Every function takes embeddings as torch tensors or numpy arrays, L2-normalises
them itself and computes cosine similarities in float64 on the CPU, so results do
not depend on the device or on the scale of the inputs.

Tie rule (everywhere): among equal scores the candidate with the *lower index*
wins. A retrieval target is ranked behind every candidate with a strictly higher
score and behind every candidate with an equal score and a lower index; a
classifier picks the lowest index among its maximal scores. A constant similarity
matrix therefore gives R@k = k/N exactly (chance), and a constant classifier
always predicts class 0. Ties are exact equalities of scores; identical embeddings
always give exactly equal scores (similarities are computed once per distinct
embedding, because a matrix product may round equal dot products differently
depending on their position).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from ..spatial.conventions import fold_azimuth

__all__ = [
    "ArrayLike",
    "assignment_accuracy",
    "cosine_similarity_matrix",
    "doa_classification_accuracy",
    "folded_azimuth_error_deg",
    "l2_normalize",
    "mean_absolute_folded_error_deg",
    "mean_matched_similarity",
    "pick_best_candidate",
    "recall_at_k",
    "retrieval_recalls",
    "target_ranks",
    "zero_shot_accuracy",
]

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence]


def _as_float64(x: ArrayLike, name: str, ndim: int | tuple[int, ...]) -> torch.Tensor:
    """Convert ``x`` to a float64 CPU tensor and check its number of dimensions."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.to(device="cpu", dtype=torch.float64)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if t.ndim not in allowed:
        raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {tuple(t.shape)}.")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf values; check the model outputs.")
    return t


def _as_labels(labels: ArrayLike, n: int, name: str = "labels") -> torch.Tensor:
    t = torch.as_tensor(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels))
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D sequence of {n} class indices, got shape {tuple(t.shape)}.")
    return t.to(torch.int64)


def l2_normalize(x: ArrayLike, eps: float = 1e-12) -> torch.Tensor:
    """Row-wise L2 normalisation along the last axis; float64 CPU tensor, same shape."""
    t = _as_float64(x, "embeddings", (1, 2, 3))
    return t / t.norm(dim=-1, keepdim=True).clamp_min(eps)


def cosine_similarity_matrix(audio_embeds: ArrayLike, text_embeds: ArrayLike) -> torch.Tensor:
    """Cosine similarities (N_audio, N_text) of audio (N_audio, D) and text (N_text, D) embeddings.

    Each distinct row is normalised and multiplied once, so identical embeddings get
    bit-identical similarities (exact ties).
    """
    a = _as_float64(audio_embeds, "audio_embeds", 2)
    t = _as_float64(text_embeds, "text_embeds", 2)
    if a.shape[1] != t.shape[1]:
        raise ValueError(f"Audio and text embeddings differ in size ({a.shape[1]} vs {t.shape[1]}).")
    ua, ia = torch.unique(a, dim=0, return_inverse=True)
    ut, it = torch.unique(t, dim=0, return_inverse=True)
    return (l2_normalize(ua) @ l2_normalize(ut).T)[ia][:, it]


def target_ranks(scores: ArrayLike, targets: ArrayLike | None = None) -> torch.Tensor:
    """0-based rank of each row's target among the row's scores.

    ``scores`` (N_query, N_candidate); ``targets`` (N_query,) candidate indices,
    default the diagonal (query i matches candidate i). Rank = number of candidates
    scoring strictly higher + number scoring equal with a lower index (lower index
    wins ties). Returns an int64 tensor (N_query,).
    """
    s = _as_float64(scores, "scores", 2)
    n_query, n_cand = s.shape
    if targets is None:
        if n_query != n_cand:
            raise ValueError(f"Diagonal targets need a square score matrix, got shape {tuple(s.shape)}.")
        targets = torch.arange(n_query)
    tgt = _as_labels(targets, n_query, "targets")
    if ((tgt < 0) | (tgt >= n_cand)).any():
        raise ValueError(f"targets must lie in [0, {n_cand}); got values outside that range.")
    target_score = s.gather(1, tgt[:, None])
    higher = (s > target_score).sum(dim=1)
    index = torch.arange(n_cand)[None, :]
    equal_before = ((s == target_score) & (index < tgt[:, None])).sum(dim=1)
    return higher + equal_before


def recall_at_k(scores: ArrayLike, k: int, targets: ArrayLike | None = None) -> float:
    """Fraction of queries (rows of ``scores``) whose target ranks within the top ``k``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    return float((target_ranks(scores, targets) < k).double().mean())


def retrieval_recalls(
    audio_embeds: ArrayLike, text_embeds: ArrayLike, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@k of audio→text and text→audio retrieval, one caption per clip.

    ``audio_embeds`` (N, D) and ``text_embeds`` (N, D) are matched by row (ground
    truth on the diagonal). Returns ``{"r{k}_a2t": float, "r{k}_t2a": float}`` for
    each k, fractions in [0, 1].
    """
    sims = cosine_similarity_matrix(audio_embeds, text_embeds)
    if sims.shape[0] != sims.shape[1]:
        raise ValueError(
            f"Retrieval needs one caption per clip; got {sims.shape[0]} clips and {sims.shape[1]} captions."
        )
    out: dict[str, float] = {}
    a2t, t2a = target_ranks(sims), target_ranks(sims.T)
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        out[f"r{k}_a2t"] = float((a2t < k).double().mean())
        out[f"r{k}_t2a"] = float((t2a < k).double().mean())
    return out


def pick_best_candidate(audio_embeds: ArrayLike, candidate_embeds: ArrayLike) -> torch.Tensor:
    """Index of the most similar candidate caption for each clip (lowest index on ties).

    ``audio_embeds`` (N, D); ``candidate_embeds`` either (K, D), the same K candidates
    for every clip (e.g. the DoA prompts), or (N, K, D), K candidates per clip (e.g.
    the n! assignment captions). Returns int64 (N,).
    """
    a = _as_float64(audio_embeds, "audio_embeds", 2)
    c = _as_float64(candidate_embeds, "candidate_embeds", (2, 3))
    if c.shape[-1] != a.shape[1]:
        raise ValueError(f"Audio and candidate embeddings differ in size ({a.shape[1]} vs {c.shape[-1]}).")
    if c.ndim == 2:
        scores = cosine_similarity_matrix(a, c)
    else:
        if c.shape[0] != a.shape[0]:
            raise ValueError(
                f"Per-clip candidates need one row per clip: {a.shape[0]} clips, {c.shape[0]} candidate rows."
            )
        # Elementwise product + sum over D reduces every pair the same way: exact ties stay exact.
        scores = (l2_normalize(a)[:, None, :] * l2_normalize(c)).sum(dim=-1)
    # torch.argmax does not document which maximum it returns; make "lowest index" explicit.
    return _first_true(scores == scores.max(dim=1, keepdim=True).values)


def _first_true(mask: torch.Tensor) -> torch.Tensor:
    """Column index of the first True in each row of a boolean (N, K) mask."""
    k = mask.shape[1]
    index = torch.arange(k).expand_as(mask)
    return torch.where(mask, index, torch.full_like(index, k)).min(dim=1).values


def zero_shot_accuracy(audio_embeds: ArrayLike, candidate_embeds: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of clips whose most similar candidate is the labelled one.

    Shapes as in :func:`pick_best_candidate`; ``labels`` (N,) candidate indices.
    """
    cands = _as_float64(candidate_embeds, "candidate_embeds", (2, 3))
    pred = pick_best_candidate(audio_embeds, cands)
    lab = _as_labels(labels, pred.shape[0])
    n_cand = cands.shape[-2]
    if ((lab < 0) | (lab >= n_cand)).any():
        raise ValueError(f"labels must lie in [0, {n_cand}) for {n_cand} candidates.")
    return float((pred == lab).double().mean())


def doa_classification_accuracy(audio_embeds: ArrayLike, prompt_embeds: ArrayLike, doa_classes: ArrayLike) -> float:
    """Zero-shot DoA accuracy: argmax similarity over the K class prompts (K, D).

    ``doa_classes`` (N,) with 0 = leftmost sector; prompts ordered the same way
    (``spatial.conventions.neutral_prompts``). Chance is 1/K.
    """
    return zero_shot_accuracy(audio_embeds, _as_float64(prompt_embeds, "prompt_embeds", 2), doa_classes)


def assignment_accuracy(audio_embeds: ArrayLike, candidate_embeds: ArrayLike, labels: ArrayLike) -> float:
    """Source–DoA assignment accuracy over the n! candidate captions per clip (N, n!, D).

    Chance is 1/n! (1/2 for two sources, 1/6 for three).
    """
    return zero_shot_accuracy(audio_embeds, _as_float64(candidate_embeds, "candidate_embeds", 3), labels)


def mean_matched_similarity(audio_embeds: ArrayLike, text_embeds: ArrayLike) -> float:
    """Mean cosine similarity of matched pairs (row i of audio with row i of text), in [-1, 1]."""
    a = _as_float64(audio_embeds, "audio_embeds", 2)
    t = _as_float64(text_embeds, "text_embeds", 2)
    if a.shape != t.shape:
        raise ValueError(f"Matched pairs need equal shapes, got {tuple(a.shape)} and {tuple(t.shape)}.")
    return float((l2_normalize(a) * l2_normalize(t)).sum(dim=1).mean())


def folded_azimuth_error_deg(predicted_deg: ArrayLike, true_deg: ArrayLike) -> np.ndarray:
    """Absolute error (degrees) between folded azimuths, per clip.

    Both inputs (N,) in degrees, any range: they are folded onto [−90°, 90°]
    (``fold_azimuth``) first, so the error lies in [0°, 180°].
    """
    p = np.asarray(fold_azimuth(np.asarray(predicted_deg, dtype=np.float64)), dtype=np.float64)
    t = np.asarray(fold_azimuth(np.asarray(true_deg, dtype=np.float64)), dtype=np.float64)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"Predicted and true azimuths must both be 1-D of equal length, got {p.shape} and {t.shape}.")
    return np.abs(p - t)


def mean_absolute_folded_error_deg(predicted_deg: ArrayLike, true_deg: ArrayLike) -> float:
    """Mean absolute folded-azimuth error in degrees (see :func:`folded_azimuth_error_deg`)."""
    return float(folded_azimuth_error_deg(predicted_deg, true_deg).mean())
