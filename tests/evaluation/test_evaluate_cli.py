"""`spatial-clap evaluate` end to end on tiny saved models and tiny evaluation sets built here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import hub_env
from transformers.modeling_outputs import BaseModelOutputWithPooling

from spatial_clap_hf import create_model
from spatial_clap_hf.cli import main
from spatial_clap_hf.data import build_eval_sets, make_synthetic_corpus
from spatial_clap_hf.data.schema import EVAL_SET_NAMES
from spatial_clap_hf.data.spatialized import AudioClips
from spatial_clap_hf.evaluation.metrics import assignment_accuracy, doa_classification_accuracy, retrieval_recalls
from spatial_clap_hf.evaluation.probe import doa_probe_mae_deg
from spatial_clap_hf.evaluation.report import validate_report
from spatial_clap_hf.evaluation.runner import assignment_candidates, load_eval_sets, run_evaluation
from spatial_clap_hf.models.loading import audio_embeddings, embedding_tensor, load_model_and_processor, text_embeddings
from spatial_clap_hf.spatial.conventions import neutral_prompts
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig

SR = 16000
CLIP_S = 0.5
SIZES = dict(n_doa=10, n_doa_val=10, n_assignment2=2, n_assignment3=1, n_retrieval=6)


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    """The evaluation sets of `make-eval-sets` on the synthetic corpus and one room per split."""
    root = tmp_path_factory.mktemp("eval_sets")
    corpus = make_synthetic_corpus(n_train=0, n_validation=12, n_test=16, clip_seconds=CLIP_S, output_dir=root / "corpus")
    bank = RirBank.build(root / "rirs", RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=30),
                         splits=["validation", "test"], show_progress=False)
    build_eval_sets(corpus, bank, root / "eval", clip_seconds=CLIP_S, show_progress=False, **SIZES)
    return root / "eval"


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
    assert (report["n_retrieval"], report["n_doa"], report["n_assignment"], report["n_assignment3"]) == (6, 10, 4, 6)
    for row in report["rows"]:
        assert row["r10_a2t_sp_src"] == 1.0  # N = 6 < 10: every target is in the top 10
        assert row["r1_a2t_sp_src"] <= row["r5_a2t_sp_src"] <= row["r10_a2t_sp_src"]
    # The two models differ (different towers), so their rows are not copies.
    assert report["rows"][0]["similarity_sp"] != report["rows"][1]["similarity_sp"]

    md = (cli_run / "report.md").read_text()
    body = [line for line in md.splitlines() if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in body] == ["spatial-scl", "mono", "chance"]
    assert "| chance | – | – | – | 16.67 | 16.67 |" in md  # 1/N with N = 6

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
    first = lambda name, key: [v[0] for v in sets[name][key]]  # noqa: E731  (single-source sets)
    doa_audio = audio_embeddings(model, processor, AudioClips(sets["doa"]), **kw)
    prompts = text_embeddings(model, processor, neutral_prompts(), **kw)
    assert row["doa_accuracy"] == doa_classification_accuracy(doa_audio, prompts, first("doa", "doa_class"))
    val_audio = audio_embeddings(model, processor, AudioClips(sets["doa_val"]), **kw)
    mae = doa_probe_mae_deg(val_audio, first("doa_val", "folded_azimuth_deg"), doa_audio, first("doa", "folded_azimuth_deg"))
    assert row["doa_probe_mae_deg"] == pytest.approx(mae, abs=1e-9)
    ret_audio = audio_embeddings(model, processor, AudioClips(sets["retrieval"]), **kw)
    r = retrieval_recalls(ret_audio, text_embeddings(model, processor, sets["retrieval"]["caption_src"][:], **kw), ks=(1,))
    assert (row["r1_a2t_src"], row["r1_t2a_src"]) == (r["r1_a2t"], r["r1_t2a"])
    # Assignment: each row against the captions of its scene's rows (every assignment), its own the right one.
    a3 = sets["assignment3"]
    cands, labels = assignment_candidates(a3["scene_id"][:], a3["caption"][:], "assignment3")
    assert len(cands) == 6 and all(c == a3["caption"][:] for c in cands) and labels == list(range(6))
    audio3 = audio_embeddings(model, processor, AudioClips(a3), **kw)
    text3 = text_embeddings(model, processor, [c for row in cands for c in row], **kw).reshape(6, 6, -1)
    assert row["assignment3_accuracy"] == assignment_accuracy(audio3, text3, labels)
    # Batching does not change the embeddings; repeated texts are embedded once and mapped back.
    np.testing.assert_allclose(
        audio_embeddings(model, processor, AudioClips(sets["doa"]), batch_size=1, device="cpu"), doa_audio, atol=1e-5
    )
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


def test_sets_pushed_by_make_eval_sets_evaluate_by_hub_id_as_from_their_folder(cli_run, eval_dir, model_dirs, tmp_path,
                                                                               hub):
    """make-eval-sets builds the same sets again and pushes them (one config per set); evaluate reads them by
    Hub id, in a fresh process, and gives the report of the local folder."""
    script = Path(sys.executable).with_name("spatial-clap")
    env = hub_env(hub, tmp_path / "hf")
    sizes = [f"--{k.replace('_', '-')}={v}" for k, v in SIZES.items()]
    build = [str(script), "make-eval-sets", "--corpus", str(eval_dir.parent / "corpus"), "--rirs",
             str(eval_dir.parent / "rirs"), "--output-dir", str(tmp_path / "eval"), "--clip-seconds", str(CLIP_S), *sizes,
             "--push-to-hub", "someone/eval-sets"]
    proc = subprocess.run(build, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"Pushed to {hub.endpoint}/datasets/someone/eval-sets" in proc.stdout
    files = hub.files("someone/eval-sets", "dataset")
    assert {p.split("/")[0] for p in files if p.endswith(".parquet")} == set(EVAL_SET_NAMES)
    configs = yaml.safe_load(files["README.md"].decode().split("---")[1])["configs"]
    assert sorted(c["config_name"] for c in configs) == sorted(EVAL_SET_NAMES)

    evaluate = [str(script), "evaluate", "--model", *map(str, model_dirs), "--eval-data", "someone/eval-sets",
                "--output-dir", str(tmp_path / "report"), "--batch-size", "4", "--names", "spatial-scl", "mono",
                "--device", "cpu"]
    proc = subprocess.run(evaluate, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report == json.loads((cli_run / "report.json").read_text())


def test_clear_errors(tmp_path, eval_dir, model_dirs):
    with pytest.raises(FileNotFoundError, match="make-eval-sets"):
        run_evaluation([model_dirs[0]], tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="every assignment of each mixture"):
        assignment_candidates(["s0", "s1"], ["A.", "B."], "assignment2")  # one row per scene: not an SCL set
    with pytest.raises(ValueError, match="one name per model"):
        run_evaluation(model_dirs, eval_dir, tmp_path / "out", names=["only-one"])
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        load_model_and_processor(tmp_path, "cpu")
    with pytest.raises(SystemExit):
        main(["evaluate", "--eval-data", str(eval_dir), "--output-dir", str(tmp_path)])  # --model missing
    assert set(EVAL_SET_NAMES) == set(load_eval_sets(eval_dir))
