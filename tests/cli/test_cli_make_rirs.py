"""`spatial-clap make-rirs` and `spatial-clap make-eval-sets` end to end on tiny inputs."""

import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from spatial_clap_hf.cli import main
from spatial_clap_hf.data.schema import EVAL_SET_NAMES, SOURCE_FEATURES
from spatial_clap_hf.data.spatialized import AudioClips
from spatial_clap_hf.evaluation.runner import load_eval_sets
from spatial_clap_hf.spatial.rir_bank import RirBank

TINY = ["--max-rooms", "1", "--azimuth-step", "30", "--num-workers", "1"]


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rirs")
    assert main(["make-rirs", "--output-dir", str(directory), "--split", "validation", "--split", "test", *TINY]) == 0
    return directory


def test_make_rirs_builds_the_requested_splits(bank_dir, capsys):
    bank = RirBank.load(bank_dir)
    assert bank.splits == ["validation", "test"] and bank.config.azimuth_step_deg == 30
    assert len(bank.rooms("test")) == 1 and bank.num_channels == 2
    assert bank.get(bank.rooms("test")[0], -120).shape[0] == 2


def test_make_rirs_rerun_reuses_and_mismatch_is_refused(bank_dir):
    before = sorted(p.stat().st_mtime_ns for p in (bank_dir / "test").iterdir())
    assert main(["make-rirs", "--output-dir", str(bank_dir), "--split", "test", *TINY]) == 0
    assert sorted(p.stat().st_mtime_ns for p in (bank_dir / "test").iterdir()) == before
    with pytest.raises(SystemExit, match="different parameters"):
        main(["make-rirs", "--output-dir", str(bank_dir), "--split", "test", "--max-rooms", "1", "--azimuth-step", "45"])
    with pytest.raises(SystemExit, match="not supported"):
        main(["make-rirs", "--output-dir", str(bank_dir / "x"), "--azimuth-step", "7"])


def test_console_script_runs_in_a_subprocess(tmp_path):
    script = Path(sys.executable).with_name("spatial-clap")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    args = [str(script), "make-rirs", "--output-dir", str(tmp_path), "--split", "test", "--max-rooms", "1"]
    result = subprocess.run(args + ["--azimuth-step", "90", "--num-workers", "2"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "RirBank(rooms={'test': 1}" in result.stdout
    assert "Simulating RIRs" in result.stderr  # the progress bar
    assert RirBank.load(tmp_path).rooms("test")


def _corpus(path: Path) -> None:
    rng = np.random.default_rng(0)
    splits = {}
    for split in ("train", "validation", "test"):
        n = 8
        splits[split] = datasets.Dataset.from_dict(
            {
                "id": [f"{split}-{i}" for i in range(n)],
                "audio": [{"array": 0.1 * rng.standard_normal(4000).astype(np.float32), "sampling_rate": 16000} for _ in range(n)],
                "captions": [[f"Noise burst number {i}"] for i in range(n)],
                "labels": [[f"class {i % 4}"] for i in range(n)],
            },
            features=SOURCE_FEATURES,
        )
    datasets.DatasetDict(splits).save_to_disk(str(path))


def test_make_eval_sets_cli(bank_dir, tmp_path):
    _corpus(tmp_path / "corpus")
    out = tmp_path / "eval"
    sizes = ["--n-doa", "5", "--n-assignment2", "3", "--n-assignment3", "2", "--n-retrieval", "4"]
    args = ["make-eval-sets", "--corpus", str(tmp_path / "corpus"), "--rirs", str(bank_dir), "--output-dir", str(out)]
    assert main(args + sizes + ["--clip-seconds", "0.25", "--seed", "1", "--num-proc", "2"]) == 0
    sets = load_eval_sets(out)
    for name in EVAL_SET_NAMES:
        assert len(sets[name]) > 0 and AudioClips(sets[name])[0].shape == (2, 4000)
    assert len(sets["doa_val"]) == 5 and len(sets["assignment2"]) == 3 * 2 and len(sets["assignment3"]) == 2 * 6
    assert sets["assignment2"]["source_ids"][0][0].startswith("test-")
    val = tmp_path / "eval_val"
    args_val = ["make-eval-sets", "--corpus", str(tmp_path / "corpus"), "--rirs", str(bank_dir), "--output-dir", str(val)]
    assert main(args_val + sizes + ["--clip-seconds", "0.25", "--split", "validation"]) == 0
    assert load_eval_sets(val)["assignment2"]["source_ids"][0][0].startswith("validation-")
    with pytest.raises(SystemExit, match="no RIR bank"):
        main(["make-eval-sets", "--corpus", str(tmp_path / "corpus"), "--rirs", str(tmp_path), "--output-dir", str(out)])
    with pytest.raises(SystemExit, match="something other than a spatialized dataset"):
        main(args_val[:-1] + [str(tmp_path / "corpus")] + sizes + ["--clip-seconds", "0.25"])
