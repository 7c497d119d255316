"""Two real CPU processes (gloo) through ``accelerate launch``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
RECIPES = HERE.parents[1] / "recipes"


def _launch(script: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(RECIPES / "accelerate" / "cpu2.yaml"),
        str(script), *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_two_process_contrastive_loss_and_gradients_match_one_process(tmp_path):
    out = tmp_path / "result.json"
    proc = _launch(HERE / "distributed" / "contrastive_gather.py", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["world_size"] == 2
    assert result["missing"] == []
    assert result["num_params"] > 20
    assert result["loss_distributed"] == pytest.approx(result["loss_single"], rel=1e-5)
    # Gradients are not tiny (the comparison means something) and match to float32 round-off.
    assert result["max_grad"] > 1e-3
    assert result["max_grad_diff"] <= 1e-5 * max(1.0, result["max_grad"])


def test_two_process_cached_accumulation_matches_one_process_on_the_global_batch(tmp_path):
    out = tmp_path / "result.json"
    proc = _launch(HERE / "distributed" / "cached_accumulation.py", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["world_size"] == 2 and result["num_params"] > 20
    assert result["loss_accumulated"] == pytest.approx(result["loss_single"], rel=1e-5)
    assert result["max_grad"] > 1e-3
    assert result["max_grad_diff"] <= 1e-5 * max(1.0, result["max_grad"])


def test_two_process_training_run_through_the_recipe_launcher(tmp_path):
    from spatial_clap_hf.data import make_synthetic_corpus
    from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig

    make_synthetic_corpus(n_train=32, n_validation=0, n_test=0, clip_seconds=1.0, output_dir=tmp_path / "corpus")
    RirBank.build(tmp_path / "rirs", RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=45), splits=["train"])
    out = tmp_path / "run"
    sets = {
        "data.corpus": tmp_path / "corpus", "data.rirs": tmp_path / "rirs", "data.clip_seconds": 1.0,
        "batch.n_single": 4, "batch.n_mix2": 2, "model.spatial_encoder": "none", "optim.epochs": 1,
        "save_every": 1, "log_with": "[]",
    }
    args = ["--config", str(RECIPES / "tiny.yaml"), "--output-dir", str(out), "--no-progress"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    proc = _launch(RECIPES / "train.py", *args)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # 32 clips, 8 per process and step, 2 processes: 2 steps make the epoch.
    assert "Finished 2 steps" in proc.stdout
    assert (out / "model" / "model.safetensors").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint_0", "checkpoint_1"]
    # Each process saved its own RNG state.
    assert {p.name for p in (out / "checkpoints" / "checkpoint_1").glob("random_states_*.pkl")} == {
        "random_states_0.pkl", "random_states_1.pkl"
    }
