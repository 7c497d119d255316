"""`spatial-clap spatialize` end to end: the command, its progress bar and errors, and the Hub upload
through datasets' own push_to_hub, and reading the pushed dataset and a pushed source corpus back by Hub id
(against the Hub stand-in of ``tests/hub_server.py``)."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from conftest import hub_env, run_python

from spatial_clap_hf.cli import main
from spatial_clap_hf.data.schema import SOURCE_FEATURES
from spatial_clap_hf.data.spatialized import AudioClips, load_spatialized
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


#: Reads one split of a spatialized dataset by Hub id (in a process pointed at the stand-in) and saves it;
#: streamed, the split gives the same rows.
READ_BACK = """
import sys
from datasets import Audio
from spatial_clap_hf.data.spatialized import load_spatialized
rows = load_spatialized(sys.argv[1], split=sys.argv[2])
rows.save_to_disk(sys.argv[3])
streamed = load_spatialized(sys.argv[1], split=sys.argv[2], streaming=True).cast_column("audio", Audio(decode=False))
assert list(streamed) == rows.cast_column("audio", Audio(decode=False)).to_list()
"""


def assert_same_rows(copy: datasets.Dataset, original: datasets.Dataset) -> None:
    """Same columns, values and FLAC bytes, and the same decoded audio."""
    assert copy.features == original.features and len(copy) == len(original)
    undecoded = datasets.Audio(decode=False)
    assert copy.cast_column("audio", undecoded).to_list() == original.cast_column("audio", undecoded).to_list()
    for a, b in zip(AudioClips(copy)[:], AudioClips(original)[:]):
        np.testing.assert_array_equal(a, b)


def test_console_script_shows_progress_pushes_through_datasets_and_reads_back_by_hub_id(inputs, tmp_path, hub):
    from spatial_clap_hf.data.dataset_card import render_dataset_card

    script = Path(sys.executable).with_name("spatial-clap")
    env = hub_env(hub, tmp_path / "hf")
    out = tmp_path / "out"
    cmd = [str(script), *_args(inputs, out, "--split", "test", "--num-sources", "2", "--push-to-hub", "someone/spatial-set")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Spatializing default/test" in proc.stderr  # the progress bar
    assert "test: 3 rows (3 scenes" in proc.stdout  # the 6 test clips in pairs
    assert f"Pushed to {hub.endpoint}/datasets/someone/spatial-set" in proc.stdout
    repo_calls = [(r.method, r.path.split("?")[0], r.auth) for r in hub.requests
                  if r.path.startswith(("/api/repos/", "/api/datasets/"))]
    assert [c[:2] for c in repo_calls[:2]] == [("GET", "/api/datasets/someone/spatial-set"), ("POST", "/api/repos/create")]
    assert {auth for *_, auth in repo_calls} == {"Bearer hf_test_token"}
    create = json.loads(next(r.body for r in hub.requests if r.path == "/api/repos/create"))
    assert (create["organization"], create["name"], create["type"]) == ("someone", "spatial-set", "dataset")
    preupload = [json.loads(r.body) for r in hub.requests if "/someone/spatial-set/preupload/" in r.path]
    shard = preupload[0]["files"][0]
    assert shard["path"] == "data/test/test-00000-of-00001.parquet"  # datasets' Parquet, our layout
    assert base64.b64decode(shard["sample"])[:4] == b"PAR1"

    # The repository holds the shards under the documented layout and the dataset card, pushed last.
    files = hub.files("someone/spatial-set", "dataset")
    assert sorted(files) == [".gitattributes", "README.md", "data/test/test-00000-of-00001.parquet"]
    assert hub.history("someone/spatial-set", "dataset") == ["initial commit", "Upload default/test", "Upload dataset card"]
    card = files["README.md"].decode()
    assert card == str(render_dataset_card(out, repo_id="someone/spatial-set"))
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "test", "path": "data/test/test-*"}]}]
    assert "## Conventions" in card and "+90° = left" in card and "channel 0 is the **left** microphone" in card
    assert 'load_dataset("someone/spatial-set"' in card

    # Read back by Hub id, in a fresh process: the same rows and audio as the local folder.
    run_python(READ_BACK, env, "someone/spatial-set", "test", str(tmp_path / "copy"))
    assert_same_rows(datasets.load_from_disk(str(tmp_path / "copy")), load_spatialized(out, split="test"))
    shard_reads = [r for r in hub.requests if r.method == "GET" and r.path.endswith("/test-00000-of-00001.parquet")]
    assert any("range" in r.headers for r in shard_reads)  # streaming reads the Parquet by byte ranges


PUSH_CORPUS = """
import sys
import datasets
datasets.load_from_disk(sys.argv[1]).push_to_hub(sys.argv[2])
"""


def test_spatialize_reads_a_source_corpus_by_hub_id_as_from_its_folder(inputs, tmp_path, hub):
    from spatial_clap_hf.data import make_synthetic_corpus, read_manifest

    corpus = tmp_path / "corpus"
    make_synthetic_corpus(n_train=2, n_validation=2, n_test=6, clip_seconds=0.5, output_dir=corpus)
    env = hub_env(hub, tmp_path / "hf")
    run_python(PUSH_CORPUS, env, str(corpus), "someone/synthetic-corpus")
    assert sorted(p for p in hub.files("someone/synthetic-corpus", "dataset") if p.endswith(".parquet")) == [
        f"data/{split}-00000-of-00001.parquet" for split in ("test", "train", "validation")
    ]
    common = ["--rirs", str(inputs / "rirs"), "--clip-seconds", "0.25", "--split", "test", "--num-sources", "1", "2",
              "--scl", "--seed", "3"]
    script = Path(sys.executable).with_name("spatial-clap")
    proc = subprocess.run([str(script), "spatialize", "--corpus", "someone/synthetic-corpus", "--output-dir",
                           str(tmp_path / "from-hub"), *common], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert main(["spatialize", "--corpus", str(corpus), "--output-dir", str(tmp_path / "from-dir"), *common]) == 0
    from_hub, from_dir = (load_spatialized(tmp_path / name, split="test") for name in ("from-hub", "from-dir"))
    assert sorted(from_dir["n_sources"]) == [1, 1, 1, 1, 2, 2]  # 4 clips alone, 1 pair in both assignments
    assert_same_rows(from_hub, from_dir)
    (part,) = read_manifest(tmp_path / "from-hub")["parts"].values()
    assert part["params"]["corpus"]["name"] == "someone/synthetic-corpus" and part["params"]["corpus"]["rows"] == 6
