"""`spatial-clap evaluate` end to end on tiny saved models and tiny evaluation sets built here."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from spatial_clap_hf import create_model
from spatial_clap_hf.cli import main
from spatial_clap_hf.data.schema import EVAL_SET_NAMES, assignment_features, doa_features, retrieval_features
from spatial_clap_hf.evaluation.metrics import doa_classification_accuracy, retrieval_recalls
from spatial_clap_hf.evaluation.probe import doa_probe_mae_deg
from spatial_clap_hf.evaluation.report import validate_report
from spatial_clap_hf.evaluation.runner import load_eval_sets, run_evaluation
from spatial_clap_hf.models.loading import audio_embeddings, embedding_tensor, load_model_and_processor, text_embeddings
from spatial_clap_hf.spatial.conventions import compose_caption, doa_class, fold_azimuth, neutral_prompts

SR = 16000
CLIP_S = 0.5
SOURCES = ["A dog is barking", "A bell rings", "Rain falls on a roof", "A man speaks", "A siren wails", "Birds chirp"]


def _stereo(azimuths: list[float], rng: np.random.Generator) -> np.ndarray:
    """(2, samples) float32 mixture of noise bursts, each with the inter-channel delay of its azimuth."""
    n = int(CLIP_S * SR)
    out = np.zeros((2, n), dtype=np.float32)
    for az in azimuths:
        lag = int(round(0.15 / 340.0 * SR * np.sin(np.radians(az))))  # > 0: left channel leads
        src = 0.1 * rng.standard_normal(n + 20).astype(np.float32)
        out[0] += src[10 : 10 + n]
        out[1] += src[10 - lag : 10 - lag + n]
    return out / len(azimuths)


def _common(i: int, azimuths: list[float], sources: list[int], rng) -> dict:
    return {
        "id": f"clip{i}",
        "waveform": _stereo(azimuths, rng),
        "sampling_rate": SR,
        "room_id": 7,
        "azimuths_deg": azimuths,
        "source_ids": [f"src{s}" for s in sources],
    }


def _doa_set(n: int, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        az = float(rng.uniform(-180, 180))
        src = i % len(SOURCES)
        rows.append(
            {
                **_common(i, [az], [src], rng),
                "folded_azimuth_deg": float(fold_azimuth(az)),
                "doa_class": int(doa_class(az)),
                "caption_src": compose_caption([SOURCES[src]]),
                "caption_sp_src": compose_caption([SOURCES[src]], [az]),
            }
        )
    return datasets.Dataset.from_list(rows, features=doa_features())


def _assignment_set(n: int, n_sources: int, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        srcs = [int(s) for s in rng.choice(len(SOURCES), n_sources, replace=False)]
        azs = [80.0, 0.0, -80.0][:n_sources]
        perms = list(itertools.permutations(range(n_sources)))
        cands = [compose_caption([SOURCES[s] for s in srcs], [azs[p] for p in perm]) for perm in perms]
        label = int(rng.integers(len(perms)))
        cands[0], cands[label] = cands[label], cands[0]  # identity caption moved to position `label`
        rows.append({**_common(i, azs, srcs, rng), "candidate_captions": cands, "label": label})
    return datasets.Dataset.from_list(rows, features=assignment_features())


def _retrieval_set(n: int, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        srcs = [i % len(SOURCES)] if i % 2 == 0 else [i % len(SOURCES), (i + 1) % len(SOURCES)]
        azs = [float(a) for a in rng.uniform(-90, 90, len(srcs))]
        rows.append(
            {
                **_common(i, azs, srcs, rng),
                "n_sources": len(srcs),
                "caption_src": compose_caption([SOURCES[s] for s in srcs]),
                "caption_sp_src": compose_caption([SOURCES[s] for s in srcs], azs),
            }
        )
    return datasets.Dataset.from_list(rows, features=retrieval_features())


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval_sets")
    sets = {
        "doa": _doa_set(10, 1),
        "doa_val": _doa_set(10, 2),
        "assignment2": _assignment_set(4, 2, 3),
        "assignment3": _assignment_set(3, 3, 4),
        "retrieval": _retrieval_set(6, 5),
    }
    for name, ds in sets.items():
        ds.save_to_disk(str(root / name))
    return root


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tiny_processor) -> list[Path]:
    root = tmp_path_factory.mktemp("models")
    dirs = []
    for preset, scl in (("tiny", True), ("tiny-mono", False)):
        torch.manual_seed(0)
        model = create_model(preset, scl=scl).eval()
        path = root / preset
        model.save_pretrained(path)
        tiny_processor.save_pretrained(path)
        dirs.append(path)
    return dirs


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, eval_dir, model_dirs) -> Path:
    out = tmp_path_factory.mktemp("report")
    argv = ["evaluate", "--model", *map(str, model_dirs), "--eval-data", str(eval_dir), "--output-dir", str(out)]
    assert main([*argv, "--batch-size", "4", "--names", "spatial-scl", "mono", "--device", "cpu"]) == 0
    return out


def test_embedding_adapter_accepts_model_outputs_and_tensors():
    emb = torch.randn(3, 5)
    assert embedding_tensor(emb) is emb
    assert embedding_tensor(BaseModelOutputWithPooling(last_hidden_state=torch.zeros(3, 2, 5), pooler_output=emb)) is emb
    with pytest.raises(TypeError, match="pooler_output"):
        embedding_tensor(BaseModelOutputWithPooling(last_hidden_state=emb))
    with pytest.raises(ValueError, match=r"\(batch, dim\)"):
        embedding_tensor(torch.zeros(3))


def test_cli_writes_valid_report_markdown_and_figure(cli_run, eval_dir):
    report = json.loads((cli_run / "report.json").read_text())
    validate_report(report)
    assert [r["model"] for r in report["rows"]] == ["spatial-scl", "mono"]
    assert [(r["spatial_encoder"], r["scl"]) for r in report["rows"]] == [("seld", True), ("none", False)]
    assert (report["n_retrieval"], report["n_doa"], report["n_assignment"], report["n_assignment3"]) == (6, 10, 4, 3)
    for row in report["rows"]:
        assert row["r10_a2t_sp_src"] == 1.0  # N = 6 < 10: every target is in the top 10
        assert row["r1_a2t_sp_src"] <= row["r5_a2t_sp_src"] <= row["r10_a2t_sp_src"]
    # The two models differ (different towers), so their rows are not copies.
    assert report["rows"][0]["similarity_sp"] != report["rows"][1]["similarity_sp"]

    md = (cli_run / "report.md").read_text()
    body = [line for line in md.splitlines() if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in body] == ["spatial-scl", "mono", "chance"]
    assert "| chance | – | – | 16.67 | 16.67 |" in md  # 1/N with N = 6

    import matplotlib.image as mpimg

    png = cli_run / "embeddings_pca.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(png)
    assert image.shape[0] >= 300 and image.shape[1] >= 800  # two panels side by side
    assert image[..., :3].std() > 0.05


def test_report_numbers_match_the_metric_functions(cli_run, eval_dir, model_dirs):
    row = json.loads((cli_run / "report.json").read_text())["rows"][0]
    sets = load_eval_sets(eval_dir)
    model, processor = load_model_and_processor(model_dirs[0], "cpu")
    kw = {"batch_size": 4, "device": "cpu"}
    doa_audio = audio_embeddings(model, processor, sets["doa"], **kw)
    prompts = text_embeddings(model, processor, neutral_prompts(), **kw)
    assert row["doa_accuracy"] == doa_classification_accuracy(doa_audio, prompts, sets["doa"]["doa_class"][:])
    val_audio = audio_embeddings(model, processor, sets["doa_val"], **kw)
    mae = doa_probe_mae_deg(val_audio, sets["doa_val"]["folded_azimuth_deg"][:], doa_audio, sets["doa"]["folded_azimuth_deg"][:])
    assert row["doa_probe_mae_deg"] == pytest.approx(mae, abs=1e-9)
    ret_audio = audio_embeddings(model, processor, sets["retrieval"], **kw)
    r = retrieval_recalls(ret_audio, text_embeddings(model, processor, sets["retrieval"]["caption_src"][:], **kw), ks=(1,))
    assert (row["r1_a2t_src"], row["r1_t2a_src"]) == (r["r1_a2t"], r["r1_t2a"])
    # Batching does not change the embeddings; repeated texts are embedded once and mapped back.
    np.testing.assert_allclose(audio_embeddings(model, processor, sets["doa"], batch_size=1, device="cpu"), doa_audio, atol=1e-5)
    twice = text_embeddings(model, processor, ["A bell rings.", "A dog barks.", "A bell rings."], **kw)
    torch.testing.assert_close(twice[0], twice[2])
    assert twice.shape[0] == 3


def test_console_script_in_a_subprocess_reproduces_the_row(cli_run, eval_dir, model_dirs, tmp_path):
    script = Path(sys.executable).with_name("spatial-clap")
    assert script.is_file(), f"console script missing at {script}; reinstall the package (pip install -e .)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [str(script), "evaluate", "--model", str(model_dirs[0]), "--eval-data", str(eval_dir)]
    cmd += ["--output-dir", str(tmp_path), "--batch-size", "4"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "embed tiny/doa" in proc.stderr  # tqdm progress bars while embedding
    report = json.loads((tmp_path / "report.json").read_text())
    validate_report(report)
    expected = json.loads((cli_run / "report.json").read_text())["rows"][0]
    got = report["rows"][0]
    assert got["model"] == "tiny"  # default name = directory name
    assert {k: v for k, v in got.items() if k != "model"} == {k: v for k, v in expected.items() if k != "model"}
    assert (tmp_path / "embeddings_pca.png").is_file() and (tmp_path / "report.md").is_file()


def test_clear_errors(tmp_path, eval_dir, model_dirs):
    with pytest.raises(FileNotFoundError, match="make-eval-sets"):
        run_evaluation([model_dirs[0]], tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="one name per model"):
        run_evaluation(model_dirs, eval_dir, tmp_path / "out", names=["only-one"])
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        load_model_and_processor(tmp_path, "cpu")
    with pytest.raises(SystemExit):
        main(["evaluate", "--eval-data", str(eval_dir), "--output-dir", str(tmp_path)])  # --model missing
    assert set(EVAL_SET_NAMES) == set(load_eval_sets(eval_dir))
