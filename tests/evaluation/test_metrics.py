"""Metric functions, the DoA probe and the local evaluate module on hand-built embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spatial_clap_hf.evaluation import METRIC_MODULE_PATH
from spatial_clap_hf.evaluation.metrics import (
    assignment_accuracy,
    cosine_similarity_matrix,
    doa_classification_accuracy,
    folded_azimuth_error_deg,
    mean_absolute_folded_error_deg,
    mean_matched_similarity,
    pick_best_candidate,
    recall_at_k,
    retrieval_recalls,
    target_ranks,
    zero_shot_accuracy,
)
from spatial_clap_hf.evaluation.probe import RidgeDoaProbe, doa_probe_mae_deg
from spatial_clap_hf.spatial.conventions import doa_class


def _orthonormal(n: int, d: int, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, n)))
    return q.T  # (n, d), orthonormal rows


# --- retrieval -------------------------------------------------------------------------


def test_perfect_retrieval_gives_one_at_every_k():
    a = _orthonormal(12, 16)
    t = a * 3.0 + 0.01 * np.random.default_rng(1).normal(size=a.shape)  # scale must not matter
    r = retrieval_recalls(a, t)
    assert r == {k: 1.0 for k in ("r1_a2t", "r1_t2a", "r5_a2t", "r5_t2a", "r10_a2t", "r10_t2a")}


def test_constant_scores_give_exact_chance_by_lower_index_rule():
    n = 20
    scores = np.full((n, n), 0.3)
    ranks = target_ranks(scores)
    assert ranks.tolist() == list(range(n))  # target i ranks behind the i lower-index ties
    assert recall_at_k(scores, 1) == 1 / n
    assert recall_at_k(scores, 5) == 5 / n
    assert recall_at_k(scores, 10) == 10 / n


def test_identical_text_embeddings_give_chance_both_ways():
    n = 15
    a = np.random.default_rng(2).normal(size=(n, 8))
    t = np.tile(np.random.default_rng(3).normal(size=(1, 8)), (n, 1))
    r = retrieval_recalls(a, t, ks=(1, 5))
    assert r["r1_a2t"] == 1 / n and r["r5_a2t"] == 5 / n
    # Every text query sees the same audio ranking, so exactly k queries find their clip in the top k.
    assert r["r1_t2a"] == 1 / n and r["r5_t2a"] == 5 / n


def test_tie_at_top_lower_index_wins():
    scores = np.array([[0.9, 0.9, 0.1], [0.9, 0.9, 0.1], [0.2, 0.5, 0.5]])
    # row 0: target 0 wins the tie; row 1: target 1 loses to index 0; row 2: target 2 loses to index 1.
    assert target_ranks(scores).tolist() == [0, 1, 1]
    assert recall_at_k(scores, 1) == pytest.approx(1 / 3)
    assert recall_at_k(scores, 2) == 1.0


def test_reversed_retrieval_is_zero_at_one_and_explicit_targets():
    scores = -np.abs(np.subtract.outer(np.arange(6), np.arange(6))).astype(float)
    assert recall_at_k(scores, 1) == 1.0
    neighbour = np.array([1, 2, 3, 4, 5, 4])  # distance 1; ties with the other neighbour
    assert recall_at_k(scores, 1, targets=neighbour) == 0.0
    # Rows 1-4 lose the tie to the lower-index neighbour (rank 2); rows 0 and 5 have no rival (rank 1).
    assert target_ranks(scores, neighbour).tolist() == [1, 2, 2, 2, 2, 1]
    assert recall_at_k(scores, 2, targets=neighbour) == pytest.approx(2 / 6)
    assert recall_at_k(scores, 3, targets=neighbour) == 1.0


def test_retrieval_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one caption per clip"):
        retrieval_recalls(np.ones((4, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="differ in size"):
        cosine_similarity_matrix(np.ones((4, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_recalls(np.full((2, 2), np.nan), np.ones((2, 2)))


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(4)
    a, t = rng.normal(size=(30, 8)).astype(np.float32), rng.normal(size=(30, 8)).astype(np.float32)
    assert retrieval_recalls(a, t) == retrieval_recalls(torch.from_numpy(a), torch.from_numpy(t))


# --- zero-shot DoA, assignment, similarity --------------------------------------------------


def test_doa_classification_perfect_constant_and_wrong():
    prompts = _orthonormal(5, 8)
    labels = np.array([0, 1, 2, 3, 4, 4, 2])
    assert doa_classification_accuracy(prompts[labels] + 0.05, prompts, labels) == 1.0
    # Identical prompts tie exactly for every clip → class 0 is always picked (lowest index wins).
    same = np.tile(np.random.default_rng(12).normal(size=(1, 8)), (5, 1))
    audio = np.random.default_rng(13).normal(size=(len(labels), 8))
    assert pick_best_candidate(audio, same).tolist() == [0] * len(labels)
    assert doa_classification_accuracy(audio, same, labels) == pytest.approx(1 / 7)
    assert doa_classification_accuracy(prompts[(labels + 1) % 5], prompts, labels) == 0.0


def test_assignment_true_swapped_and_tied():
    rng = np.random.default_rng(5)
    n, d = 10, 16
    audio = rng.normal(size=(n, d))
    other = rng.normal(size=(n, d))
    labels = rng.integers(0, 2, size=n)
    cands = np.zeros((n, 2, d))
    cands[np.arange(n), labels] = audio
    cands[np.arange(n), 1 - labels] = other
    assert assignment_accuracy(audio, cands, labels) == 1.0
    assert assignment_accuracy(audio, cands, 1 - labels) == 0.0  # swapped labels → 0
    tied = np.repeat(audio[:, None, :], 2, axis=1)
    assert assignment_accuracy(audio, tied, labels) == pytest.approx(float((labels == 0).mean()))


def test_three_source_assignment_six_candidates():
    rng = np.random.default_rng(6)
    n, d = 12, 24
    audio = rng.normal(size=(n, d))
    cands = rng.normal(size=(n, 6, d))
    labels = np.arange(n) % 6
    cands[np.arange(n), labels] = audio + 0.01 * rng.normal(size=(n, d))
    assert assignment_accuracy(audio, cands, labels) == 1.0
    assert assignment_accuracy(audio, cands, (labels + 3) % 6) == 0.0
    with pytest.raises(ValueError, match="one row per clip"):
        zero_shot_accuracy(audio, cands[:5], labels)
    with pytest.raises(ValueError, match="labels must lie"):
        zero_shot_accuracy(audio, cands, labels + 6)


def test_mean_matched_similarity_known_values():
    a = _orthonormal(4, 6)
    assert mean_matched_similarity(a, 2 * a) == pytest.approx(1.0)
    assert mean_matched_similarity(a, -a) == pytest.approx(-1.0)
    assert mean_matched_similarity(a, np.roll(a, 1, axis=0)) == pytest.approx(0.0, abs=1e-12)
    mixed = (a + np.roll(a, 1, axis=0)) / math.sqrt(2)
    assert mean_matched_similarity(a, mixed) == pytest.approx(1 / math.sqrt(2))


def test_folded_azimuth_error():
    # 170° folds to 10°, −100° folds to −80°.
    np.testing.assert_allclose(folded_azimuth_error_deg([170.0, -100.0, 90.0], [10.0, -60.0, -90.0]), [0.0, 20.0, 180.0], atol=1e-9)
    assert mean_absolute_folded_error_deg([0.0, 30.0], [10.0, 10.0]) == pytest.approx(15.0)


# --- DoA probe ---------------------------------------------------------------------------


def _angle_embeddings(angles_deg: np.ndarray, d: int, noise: float, seed: int) -> np.ndarray:
    """Embeddings whose first two directions encode (sin, cos) of the angle, plus a class bump."""
    rng = np.random.default_rng(seed)
    basis = _orthonormal(3, d, seed=100)
    rad = np.radians(angles_deg)
    signal = np.sin(rad)[:, None] * basis[0] + np.cos(rad)[:, None] * basis[1] + 0.5 * basis[2]
    return signal + noise * rng.normal(size=(len(angles_deg), d))


def test_probe_reads_linearly_encoded_angle():
    rng = np.random.default_rng(7)
    train, test = rng.uniform(-90, 90, 200), rng.uniform(-90, 90, 100)
    mae = doa_probe_mae_deg(_angle_embeddings(train, 32, 0.02, 1), train, _angle_embeddings(test, 32, 0.02, 2), test)
    assert mae < 3.0


def test_probe_on_noise_is_near_chance():
    rng = np.random.default_rng(8)
    train, test = rng.uniform(-90, 90, 200), rng.uniform(-90, 90, 200)
    mae = doa_probe_mae_deg(rng.normal(size=(200, 32)), train, rng.normal(size=(200, 32)), test)
    assert mae > 35.0  # a constant guess of 0° scores 45° on uniform angles


def test_probe_is_deterministic_outputs_folded_and_picks_alpha_on_train():
    rng = np.random.default_rng(9)
    angles = rng.uniform(-90, 90, 60)
    x = _angle_embeddings(angles, 16, 0.1, 3)
    p1, p2 = RidgeDoaProbe().fit(x, angles), RidgeDoaProbe().fit(x, angles)
    assert p1.alpha_ == p2.alpha_
    pred = p1.predict(x)
    np.testing.assert_array_equal(pred, p2.predict(x))
    assert pred.min() >= -90.0 and pred.max() <= 90.0
    # Unfolded training angles (back hemisphere) give the same probe as their folded versions.
    back = np.where(angles > 0, 180.0 - angles, -180.0 - angles)
    np.testing.assert_allclose(RidgeDoaProbe().fit(x, back).predict(x), pred, atol=1e-9)
    with pytest.raises(RuntimeError, match="before fit"):
        RidgeDoaProbe().predict(x)
    with pytest.raises(ValueError, match="one azimuth per clip"):
        RidgeDoaProbe().fit(x, angles[:-1])


def test_probe_classes_consistent_with_conventions():
    rng = np.random.default_rng(10)
    angles = rng.uniform(-90, 90, 150)
    x = _angle_embeddings(angles, 16, 0.01, 4)
    pred = RidgeDoaProbe().fit(x, angles).predict(x)
    assert (doa_class(pred) == doa_class(angles)).mean() > 0.9


# --- the local evaluate module -------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")


def test_evaluate_module_matches_plain_functions(offline, tmp_path):
    import evaluate

    rng = np.random.default_rng(11)
    a = rng.normal(size=(25, 8))
    t = a + 0.8 * rng.normal(size=(25, 8))

    retrieval = evaluate.load(METRIC_MODULE_PATH, cache_dir=str(tmp_path))
    out = retrieval.compute(predictions=a, references=t)
    expected = retrieval_recalls(a.astype(np.float32), t.astype(np.float32))  # the module stores float32
    assert {k: out[k] for k in expected} == pytest.approx(expected)
    assert 0.0 < out["r1_a2t"] < 1.0  # a non-trivial case
    assert out["mean_similarity"] == pytest.approx(mean_matched_similarity(a, t), abs=1e-6)

    zero_shot = evaluate.load(METRIC_MODULE_PATH, "zero_shot", cache_dir=str(tmp_path))
    prompts, labels = rng.normal(size=(5, 8)), rng.integers(0, 5, size=25)
    got = zero_shot.compute(predictions=a, references=labels, candidate_embeds=prompts)["accuracy"]
    assert got == pytest.approx(doa_classification_accuracy(a.astype(np.float32), prompts, labels))
    cands, lab2 = rng.normal(size=(25, 2, 8)), rng.integers(0, 2, size=25)
    got = zero_shot.compute(predictions=a, references=lab2, candidate_embeds=cands)["accuracy"]
    assert got == pytest.approx(assignment_accuracy(a.astype(np.float32), cands, lab2))

    err = evaluate.load(METRIC_MODULE_PATH, "folded_azimuth_error", cache_dir=str(tmp_path))
    pred, true = rng.uniform(-180, 180, 25), rng.uniform(-90, 90, 25)
    assert err.compute(predictions=pred, references=true)["mae_deg"] == pytest.approx(mean_absolute_folded_error_deg(pred, true))


def test_evaluate_module_batches_and_errors(offline, tmp_path):
    import evaluate

    a = _orthonormal(6, 8)
    retrieval = evaluate.load(METRIC_MODULE_PATH, cache_dir=str(tmp_path))
    retrieval.add_batch(predictions=a[:3], references=a[:3])
    retrieval.add_batch(predictions=a[3:], references=a[3:])
    assert retrieval.compute()["r1_t2a"] == 1.0
    with pytest.raises(ValueError, match="Unknown configuration"):
        evaluate.load(METRIC_MODULE_PATH, "nope", cache_dir=str(tmp_path))
    zero_shot = evaluate.load(METRIC_MODULE_PATH, "zero_shot", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="candidate_embeds"):
        zero_shot.compute(predictions=a, references=[0] * 6)


# ------------------------------------------------------------------ the self-contained evaluate module


def _metric_module():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("spatial_clap_metric_file", METRIC_MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_metric_module_imports_only_evaluate_numpy_and_datasets():
    import ast
    from pathlib import Path

    imported = set()
    for node in ast.walk(ast.parse(Path(METRIC_MODULE_PATH).read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import: the file must stand alone"
            imported.add(node.module.split(".")[0])
    assert imported == {"datasets", "evaluate", "numpy"}


def test_metric_module_arithmetic_equals_the_package_metrics():
    """The module's numpy arithmetic gives the numbers of evaluation/metrics.py, ties included."""
    module = _metric_module()
    rng = np.random.default_rng(5)
    a = rng.normal(size=(30, 6))
    t = a + rng.normal(size=(30, 6))
    tied_a = np.repeat(rng.normal(size=(5, 6)), 6, axis=0)  # six identical clips per row: exact ties
    tied_t = np.repeat(rng.normal(size=(3, 6)), 10, axis=0)
    for audio, text in ((a, t), (tied_a, t), (a, tied_t), (np.ones((8, 4)), np.ones((8, 4)))):
        assert module.retrieval_recalls(audio, text) == pytest.approx(retrieval_recalls(audio, text), abs=0)
        assert module.mean_matched_similarity(audio, text) == pytest.approx(mean_matched_similarity(audio, text))
    base = rng.normal(size=(3, 6))
    prompts = np.vstack([base, base[:1]])  # candidate 3 repeats candidate 0: 0 must win
    labels = rng.integers(0, 4, size=30)
    for audio in (a, tied_a):
        assert module.zero_shot_accuracy(audio, prompts, labels) == zero_shot_accuracy(audio, prompts, labels)
        per_clip = rng.normal(size=(30, 2, 6))
        per_clip[::3, 1] = per_clip[::3, 0]
        assert module.zero_shot_accuracy(audio, per_clip, labels % 2) == zero_shot_accuracy(audio, per_clip, labels % 2)
    pred, true = rng.uniform(-400, 400, 30), rng.uniform(-180, 180, 30)
    assert module.mean_absolute_folded_error_deg(pred, true) == pytest.approx(mean_absolute_folded_error_deg(pred, true))


def test_metric_module_loads_without_the_package(tmp_path):
    """As from a Hub metric Space: a process where spatial_clap_hf cannot be imported."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[2] / "scripts"
    code = (
        f"import sys; sys.path.insert(0, {str(scripts)!r}); from check_remote_code import block_packages; "
        "block_packages(['spatial_clap_hf', 'torchaudio', 'pyroomacoustics', 'accelerate', 'matplotlib']); "
        "import json, evaluate, numpy as np; "
        f"m = evaluate.load({METRIC_MODULE_PATH!r}, 'zero_shot', cache_dir={str(tmp_path)!r}); "
        "e = np.eye(3); print(json.dumps(m.compute(predictions=e, references=[0, 1, 2], candidate_embeds=e)))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"accuracy": 1.0}


def test_metric_card_describes_every_configuration_and_output():
    import yaml

    from spatial_clap_hf.hub import METRIC_CARD

    text = METRIC_CARD.read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert {"evaluate", "metric"} <= set(meta["tags"]) and meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    module = _metric_module()
    for name in module._CONFIGS:
        assert f'"{name}"' in text or f"`{name}`" in text, name
    for key in ("r{1,5,10}_a2t", "r{1,5,10}_t2a", "mean_similarity", "accuracy", "mae_deg", "candidate_embeds"):
        assert key in text, key
