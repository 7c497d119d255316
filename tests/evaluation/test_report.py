"""report.json shape validation, the Table-1 markdown with its chance row, and the PCA figure."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from spatial_clap_hf.evaluation.plot import EmbeddingPanel, pca_2d, plot_embeddings_pca
from spatial_clap_hf.evaluation.report import (
    FRACTION_KEYS,
    ROW_KEYS,
    chance_row,
    make_report,
    render_markdown,
    validate_report,
    write_report,
)


def _row(model: str = "spatial", encoder: str = "seld", scl: bool = True) -> dict:
    row = {"model": model, "spatial_encoder": encoder, "scl": scl, "contrastive_steps": 850, "started_from": "start/mono"}
    row.update({key: 0.25 for key in FRACTION_KEYS})
    row.update({"r1_a2t_sp_src": 0.4411, "similarity_sp": 0.31, "similarity_src": -0.02, "doa_probe_mae_deg": 12.34})
    return row


def _report(*rows: dict) -> dict:
    return make_report(list(rows) or [_row()], n_retrieval=50, n_doa=40, n_assignment=30, n_assignment3=20)


def test_valid_report_passes_and_round_trips_json(tmp_path):
    report = _report(_row(), _row("mono", "none", False))
    validate_report(report)
    json_path, md_path = write_report(report, tmp_path / "out")
    loaded = json.loads(json_path.read_text())
    assert loaded == report
    validate_report(loaded)
    assert list(loaded["rows"][0]) == list(ROW_KEYS)
    assert md_path.read_text() == render_markdown(report)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.pop("n_doa"), "missing \\['n_doa'\\]"),
        (lambda r: r.update(extra=1), "unexpected \\['extra'\\]"),
        (lambda r: r.update(rows=[]), "non-empty list"),
        (lambda r: r.update(n_retrieval=3.0), "n_retrieval must be a non-negative integer"),
        (lambda r: r.update(n_assignment=True), "n_assignment must be a non-negative integer"),
        (lambda r: r["rows"][0].pop("doa_accuracy"), "missing \\['doa_accuracy'\\]"),
        (lambda r: r["rows"][0].update(doa_accuracy=44.0), "doa_accuracy must be a fraction"),
        (lambda r: r["rows"][0].update(r1_t2a_src=float("nan")), "r1_t2a_src must be a fraction"),
        (lambda r: r["rows"][0].update(spatial_encoder="SELD"), "spatial_encoder"),
        (lambda r: r["rows"][0].update(scl=1), "scl must be a bool"),
        (lambda r: r["rows"][0].update(contrastive_steps=-1), "contrastive_steps must be a count or null"),
        (lambda r: r["rows"][0].update(contrastive_steps=8.5), "contrastive_steps must be a count or null"),
        (lambda r: r["rows"][0].update(started_from=""), "started_from must be a non-empty string or null"),
        (lambda r: r["rows"][0].pop("started_from"), "missing \\['started_from'\\]"),
        (lambda r: r["rows"][0].update(model=""), "model must be a non-empty string"),
        (lambda r: r["rows"][0].update(similarity_sp=1.5), "similarity_sp must be a cosine"),
        (lambda r: r["rows"][0].update(doa_probe_mae_deg=-1.0), "doa_probe_mae_deg"),
        (lambda r: r["rows"][0].update(assignment3_accuracy="0.5"), "assignment3_accuracy"),
    ],
)
def test_validator_names_each_deviation(mutate, message):
    report = copy.deepcopy(_report())
    mutate(report)
    with pytest.raises(ValueError, match=message):
        validate_report(report)


def test_make_report_refuses_bad_rows():
    bad = _row()
    bad["unexpected"] = 0.1
    with pytest.raises(ValueError, match="unexpected"):
        _report(bad)


def test_chance_row_levels():
    chance = chance_row(50)
    assert chance["r1_a2t_sp_src"] == chance["r1_t2a_src"] == 1 / 50
    assert chance["r5_t2a_sp_src"] == 5 / 50 and chance["r10_a2t_sp_src"] == 10 / 50
    assert chance["doa_accuracy"] == 1 / 5
    assert chance["assignment_accuracy"] == 1 / 2
    assert chance["assignment3_accuracy"] == 1 / 6
    assert chance["similarity_sp"] is None and chance["doa_probe_mae_deg"] is None
    assert chance_row(4)["r10_a2t_sp_src"] == 1.0  # capped at 1 when k >= N
    with pytest.raises(ValueError, match="n_retrieval"):
        chance_row(0)


def test_markdown_table_has_row_per_model_and_chance_row():
    md = render_markdown(_report(_row("spatial-scl"), _row("mono", "none", False)))
    table = [line for line in md.splitlines() if line.startswith("|")]
    header, rule, *body = table
    assert len(body) == 3
    n_cols = header.count("|") - 1
    assert all(line.count("|") - 1 == n_cols for line in table)
    assert body[0].startswith("| spatial-scl | seld | yes | 850 | 44.11 |")
    assert body[1].startswith("| mono | none | no | 850 | 44.11 | 25.00 |")
    unrecorded = render_markdown(_report({**_row(), "contrastive_steps": None, "started_from": None}))
    assert "| spatial | seld | yes | – | 44.11 |" in unrecorded
    chance = [c.strip() for c in body[2].strip("|").split("|")]
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert chance[0] == "chance"
    assert chance[cols.index("R@1 sp+src A2T")] == "2.00"  # 1/50
    assert chance[cols.index("R@5 sp+src T2A")] == "10.00"
    assert chance[cols.index("DoA")] == "20.00"
    assert chance[cols.index("Assign. 2 src")] == "50.00"
    assert chance[cols.index("Assign. 3 src")] == "16.67"
    assert chance[cols.index("Sim. src")] == "–"
    assert body[0].split("|")[cols.index("Probe MAE (°)") + 1].strip() == "12.3"
    assert "N = 50" in md


def test_pca_2d_finds_the_dominant_direction_and_fixes_signs():
    rng = np.random.default_rng(0)
    t = rng.normal(size=100)
    direction = np.array([3.0, 4.0, 0.0]) / 5.0
    pts = t[:, None] * 10 * direction + 0.01 * rng.normal(size=(100, 3))
    xy = pca_2d(pts)
    assert xy.shape == (100, 2)
    assert abs(np.corrcoef(xy[:, 0], t)[0, 1]) > 0.999
    np.testing.assert_allclose(pca_2d(-pts)[:, 0], -xy[:, 0], atol=1e-6)  # sign rule follows the loading
    assert pca_2d(np.ones((3, 4))).shape == (3, 2)


def test_plot_writes_a_real_png(tmp_path):
    import matplotlib.image as mpimg

    rng = np.random.default_rng(1)
    cls = rng.integers(0, 5, size=30)
    panel = lambda title: EmbeddingPanel(  # noqa: E731
        title, rng.normal(size=(30, 16)) + cls[:, None], cls, rng.normal(size=(30, 16)), cls, rng.normal(size=(5, 16))
    )
    path = plot_embeddings_pca([panel("a"), panel("b")], tmp_path / "fig" / "pca.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.shape[0] >= 300 and image.shape[1] >= 800  # two panels side by side
    assert image[..., :3].std() > 0.05  # not blank
    with pytest.raises(ValueError, match="one class per embedding"):
        plot_embeddings_pca([EmbeddingPanel("x", rng.normal(size=(4, 3)), [0, 1], rng.normal(size=(4, 3)), [0] * 4)], tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one panel"):
        plot_embeddings_pca([], tmp_path / "y.png")
