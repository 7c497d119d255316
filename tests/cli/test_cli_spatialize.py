"""`spatial-clap spatialize` end to end: the command, its progress bar and errors, and the Hub upload
through datasets' own push_to_hub (against the local stand-in of conftest's ``fake_hub``)."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from spatial_clap_hf.cli import main
from spatial_clap_hf.data.schema import SOURCE_FEATURES
from spatial_clap_hf.data.spatialized import load_spatialized
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A saved corpus of noise bursts with distinct captions and labels, and a train + test bank."""
    root = tmp_path_factory.mktemp("spatialize-inputs")
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 10), ("validation", 4), ("test", 6)):
        splits[split] = datasets.Dataset.from_dict(
            {
                "id": [f"{split}-{i}" for i in range(n)],
                "audio": [{"array": 0.1 * rng.standard_normal(4000).astype(np.float32), "sampling_rate": 16000}
                          for _ in range(n)],
                "captions": [[f"Noise burst number {i}"] for i in range(n)],
                "labels": [[f"class {i}"] for i in range(n)],
            },
            features=SOURCE_FEATURES,
        )
    datasets.DatasetDict(splits).save_to_disk(str(root / "corpus"))
    RirBank.build(root / "rirs", RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=30), splits=["train", "test"],
                  show_progress=False)
    return root


def _args(inputs, out, *extra):
    return ["spatialize", "--corpus", str(inputs / "corpus"), "--rirs", str(inputs / "rirs"), "--output-dir", str(out),
            "--clip-seconds", "0.25", *extra]


def test_spatialize_command_writes_the_dataset(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(inputs, out, "--split", "train", "--num-sources", "1", "2", "--scl", "--pairings", "2",
                      "--num-proc", "2", "--seed", "4")) == 0
    printed = capsys.readouterr().out
    rows = load_spatialized(out, split="train")
    assert f"train: {len(rows)} rows (16 scenes" in printed  # 2 draws × (6 single + 2 pairs of the other 4 clips)
    assert len(rows) == 2 * (6 + 2 * 2) and sorted(set(rows["pairing"])) == [0, 1]
    assert (out / "README.md").is_file() and json.loads((out / "skipped.json").read_text())["total"] == 0
    # a split the bank lacks, and a folder holding something else, are refused with what to do
    with pytest.raises(SystemExit, match=r"no 'validation' split \(it has \['train', 'test'\]\)"):
        main(_args(inputs, tmp_path / "val", "--split", "validation"))
    with pytest.raises(SystemExit, match="something other than a spatialized dataset"):
        main(_args(inputs, inputs, "--split", "test"))
    with pytest.raises(SystemExit, match="other parameters"):
        main(_args(inputs, out, "--split", "train", "--num-sources", "1"))


def test_console_script_shows_progress_and_pushes_through_datasets(inputs, tmp_path, fake_hub):
    endpoint, requests = fake_hub
    script = Path(sys.executable).with_name("spatial-clap")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))}
    env.update(HF_ENDPOINT=endpoint, HF_TOKEN="hf_test_token", OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "hf"))
    out = tmp_path / "out"
    cmd = [str(script), *_args(inputs, out, "--split", "test", "--num-sources", "2", "--push-to-hub", "someone/spatial-set")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert "Spatializing default/test" in proc.stderr  # the progress bar
    assert "test: 3 rows (3 scenes" in proc.stdout  # the 6 test clips in pairs
    # The upload reached the stand-in, which refuses it: the command says so and keeps the dataset.
    assert proc.returncode != 0 and "pushing it to someone/spatial-set failed" in proc.stderr
    assert len(load_spatialized(out, split="test")) == 3
    hub = [(m, p.split("?")[0], auth) for m, p, auth, _ in requests if p.startswith(("/api/repos/", "/api/datasets/"))]
    assert [call[:2] for call in hub[:2]] == [("GET", "/api/datasets/someone/spatial-set"), ("POST", "/api/repos/create")]
    assert {auth for *_, auth in hub} == {"Bearer hf_test_token"}
    create = json.loads(next(b for m, p, _, b in requests if p == "/api/repos/create"))
    assert (create["organization"], create["name"], create["type"]) == ("someone", "spatial-set", "dataset")
    preupload = [json.loads(b) for m, p, _, b in requests if p.startswith("/api/datasets/someone/spatial-set/preupload/")]
    files = [f for body in preupload for f in body["files"]]
    assert [f["path"] for f in files] == ["data/test/test-00000-of-00001.parquet"]  # datasets' Parquet, our layout
    assert base64.b64decode(files[0]["sample"])[:4] == b"PAR1"
