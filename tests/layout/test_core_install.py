"""The core install (no extra) is enough to use a checkpoint: importing the package and classifying a file
imports none of the extras' packages (``[train]``, ``[eval]``, ``[demo]``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import make_stereo

ROOT = Path(__file__).resolve().parents[2]

#: Import names of the extras' packages (pyproject.toml's optional dependencies).
EXTRAS = (
    "torchaudio",
    "torchcodec",
    "datasets",
    "pyarrow",
    "accelerate",
    "pyroomacoustics",
    "scipy",
    "tensorboard",
    "evaluate",
    "matplotlib",
    "gradio",
)

# Runs in a fresh interpreter. argv: mode, checkpoint, wav file, scripts dir, output json.
# "blocked": the extras cannot be imported (as with a core install), and everything must still work.
# "installed": the extras are importable; first the checkpoint goes through transformers alone (its own
# code), recording which extras transformers itself imports when they are installed; then the package
# classifies the file, and it may add none.
PROBE = r"""
import json, sys
mode, checkpoint, wav, scripts, out = sys.argv[1:6]
extras = json.loads(sys.argv[6])
if mode == "blocked":
    sys.path.insert(0, scripts)
    from check_remote_code import block_packages
    block_packages(extras)
    sys.path.pop(0)
    by_transformers = []
else:
    from transformers import pipeline
    pipeline("zero-shot-spatial-audio-classification", model=checkpoint, device="cpu", trust_remote_code=True)(
        wav, candidate_labels=["A bell rings.", "A dog barks."]
    )
    by_transformers = sorted(m for m in extras if sys.modules.get(m) is not None)

import spatial_clap_hf
from spatial_clap_hf.cli import main
from spatial_clap_hf.inference import classify_files, load_classifier, where_is

classifier = load_classifier(checkpoint, device="cpu")
labels = classifier(wav, candidate_labels=["A bell rings.", "A dog barks."])
where = where_is(classifier, wav, "a bell")
files = classify_files(classifier, [wav], where="a bell", top_k=2)
cli = main(["classify", wav, "--labels", "A bell rings.", "A dog barks.", "--model", checkpoint, "--device", "cpu"])
result = {
    "by_transformers": by_transformers,
    "after": sorted(m for m in extras if sys.modules.get(m) is not None),
    "labels": labels,
    "where": where,
    "files": [f.scores for f in files],
    "cli": cli,
}
open(out, "w").write(json.dumps(result))
"""


def test_extras_are_the_optional_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    optional = project["optional-dependencies"]
    assert set(optional) >= {"train", "eval", "demo", "test"}
    in_extras = {
        d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for group in optional.values() for d in group
    }
    # the import names above are exactly the extras' packages that the core does not need
    assert {name.replace("_", "-") for name in EXTRAS} == in_extras - {"pytest"}
    assert core == {"torch", "transformers", "huggingface-hub", "numpy", "safetensors", "pyyaml", "tqdm"}
    setup = (ROOT / "scripts" / "setup_env.sh").read_text()
    assert '-e ".[train,eval,demo,test]"' in setup  # `make` installs every extra


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("core") / "left.wav"
    pcm = np.round(make_stereo(1, 1.0, seed=4, delays=[5])[0].numpy().T * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(pcm.tobytes())
    return path


@pytest.mark.parametrize("mode", ["blocked", "installed"])
def test_classifying_a_file_needs_and_imports_no_extra(mode, tiny_checkpoint, stereo_wav, tmp_path):
    out = tmp_path / "probe.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    args = [mode, str(tiny_checkpoint), str(stereo_wav), str(ROOT / "scripts"), str(out), json.dumps(EXTRAS)]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    probe = json.loads(out.read_text())
    assert probe["cli"] == 0 and "A bell rings." in result.stdout
    assert sum(s["score"] for s in probe["labels"]) == pytest.approx(1.0, abs=1e-5)
    assert [d["direction"] for d in probe["where"]][0] == "on the left side" and len(probe["files"][0]) == 2
    if mode == "blocked":
        assert probe["after"] == []
    else:
        # what transformers imports by itself when installed (torchaudio, accelerate and scipy in 5.23), and nothing more
        assert probe["after"] == probe["by_transformers"], sorted(set(probe["after"]) - set(probe["by_transformers"]))
