"""Saved checkpoints load in a fresh process: with the package, and with trust_remote_code without it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import spatial_clap_hf.models.spatial_clap
from conftest import TOY_CAPTIONS
from spatial_clap_hf import create_model

# Runs in a fresh interpreter. argv: checkpoint dir, inputs .npz, outputs .pt.
# Phase "remote": spatial_clap_hf is blocked; the checkpoint loads with trust_remote_code from its own
# files. Phase "package": the block is lifted, the package is imported and the checkpoint loads through
# the registered Auto classes. One interpreter serves both phases to pay the torch/transformers import once.
LOADER = r"""
import importlib.abc, json, sys
checkpoint, inputs_path, outputs_path = sys.argv[1:4]
attempts = []

class BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "spatial_clap_hf" or name.startswith("spatial_clap_hf."):
            attempts.append(name)
            raise ImportError(f"{name} is blocked in this process")
        return None

blocker = BlockPackage()
sys.meta_path.insert(0, blocker)

import numpy as np
import torch
from transformers import AutoModel, AutoProcessor

torch.set_num_threads(1)
data = np.load(inputs_path)
captions = json.loads(str(data["captions"]))


def run(**kwargs):
    model = AutoModel.from_pretrained(checkpoint, **kwargs).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, **kwargs)
    inputs = processor(text=captions, audio=list(data["audio"]), sampling_rate=int(data["sampling_rate"]))
    with torch.no_grad():
        out = model(**inputs)
    return {
        "inputs": dict(inputs),
        "logits_per_audio": out.logits_per_audio,
        "audio_embeds": out.audio_embeds,
        "text_embeds": out.text_embeds,
        "model_module": type(model).__module__,
        "processor_module": type(processor).__module__,
        "package_modules": sorted(m for m in sys.modules if m.split(".")[0] == "spatial_clap_hf"),
    }


results = {"remote": run(trust_remote_code=True)}
results["remote"]["blocked_attempts"] = list(attempts)
sys.meta_path.remove(blocker)
import spatial_clap_hf  # noqa: E402,F401  (registers the Auto classes)

results["package"] = run()
torch.save(results, outputs_path)
"""


def _reference(checkpoint_inputs, processor):
    torch.manual_seed(0)
    model = create_model("tiny").eval()  # same seed and preset as the tiny_checkpoint fixture
    captions, audio = checkpoint_inputs
    inputs = processor(text=captions, audio=list(audio), sampling_rate=16000)
    with torch.no_grad():
        return inputs, model(**inputs)


def _write_inputs(tmp_path):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, 2, 24000))).astype(np.float32)
    captions = TOY_CAPTIONS[:2]
    path = tmp_path / "inputs.npz"
    np.savez(path, audio=audio, captions=json.dumps(captions), sampling_rate=16000)
    return path, (captions, audio)


def test_checkpoint_files_carry_auto_map_and_model_code(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_spatial_clap.SpatialClapConfig",
        "AutoModel": "modeling_spatial_clap.SpatialClapModel",
    }
    processor_config = json.loads((tiny_checkpoint / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_spatial_clap.SpatialClapProcessor"
    # the files a checkpoint carries are exactly the model family's folder (less its __init__.py)
    family = Path(spatial_clap_hf.models.spatial_clap.__file__).parent
    copied = sorted(p.name for p in tiny_checkpoint.glob("*.py"))
    assert copied == sorted(p.name for p in family.glob("*.py") if p.name != "__init__.py")
    for name in copied:
        assert (tiny_checkpoint / name).read_text() == (family / name).read_text(), name


def _assert_same_outputs(loaded, inputs, reference):
    for key, value in inputs.items():
        assert torch.equal(loaded["inputs"][key], value), key
    assert torch.allclose(loaded["logits_per_audio"], reference.logits_per_audio, atol=1e-5)
    assert torch.allclose(loaded["audio_embeds"], reference.audio_embeds, atol=1e-6)
    assert torch.allclose(loaded["text_embeds"], reference.text_embeds, atol=1e-6)



@pytest.fixture(scope="module")
def loaded_in_fresh_process(tiny_checkpoint, tmp_path_factory):
    """Outputs of the tiny checkpoint loaded in a fresh interpreter, per phase, plus the raw inputs."""
    tmp_path = tmp_path_factory.mktemp("fresh_process")
    inputs_path, raw = _write_inputs(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", LOADER, str(tiny_checkpoint), str(inputs_path), str(tmp_path / "out.pt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(tmp_path / "out.pt", weights_only=False), raw


def test_fresh_process_with_package(loaded_in_fresh_process, tiny_processor):
    results, raw = loaded_in_fresh_process
    loaded = results["package"]
    assert loaded["model_module"] == "spatial_clap_hf.models.spatial_clap.modeling_spatial_clap"
    assert loaded["processor_module"] == "spatial_clap_hf.models.spatial_clap.processing_spatial_clap"
    inputs, reference = _reference(raw, tiny_processor)
    _assert_same_outputs(loaded, inputs, reference)


def test_fresh_process_trust_remote_code_without_package(loaded_in_fresh_process, tiny_processor):
    results, raw = loaded_in_fresh_process
    loaded = results["remote"]
    assert loaded["package_modules"] == [] and loaded["blocked_attempts"] == []
    assert loaded["model_module"].startswith("transformers_modules.")
    assert loaded["processor_module"].startswith("transformers_modules.")
    inputs, reference = _reference(raw, tiny_processor)
    _assert_same_outputs(loaded, inputs, reference)
