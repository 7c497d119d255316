"""Saved checkpoints load in a fresh process: with the package, and with trust_remote_code without it.

``scripts/check_remote_code.py`` is the full check of a checkpoint's own code (package and extras
blocked: Auto classes, processor at 16 and 44.1 kHz, the pipeline by task name, batched, clear
errors); it runs here on tiny checkpoints, on the pinned transformers and on the supported floor.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import spatial_clap_hf.models.spatial_clap
from conftest import TOY_CAPTIONS, run_remote_check, save_tiny_checkpoint
from spatial_clap_hf import create_model
from spatial_clap_hf.models.spatial_clap.configuration_spatial_clap import MIN_TRANSFORMERS_VERSION

ROOT = Path(__file__).resolve().parents[2]

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
    assert config["custom_pipelines"] == {
        "zero-shot-spatial-audio-classification": {
            "impl": "pipeline_spatial_clap.SpatialZeroShotAudioClassificationPipeline",
            "pt": ["AutoModel"],
            "type": "multimodal",
        }
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


# ------------------------------------------------------------------ the full check without the package


@pytest.fixture(scope="module")
def remote_report(tiny_checkpoint, tmp_path_factory):
    return run_remote_check(tiny_checkpoint, tmp_path_factory.mktemp("remote_check"))


def test_checkpoint_code_works_without_the_package_or_its_extras(remote_report):
    checks = {r["check"]: r for r in remote_report["checks"]}
    assert len(checks) == 13 and all(r["ok"] for r in checks.values())
    assert checks["pipeline by task name resolves through custom_pipelines"]["detail"]["pipeline_module"].startswith(
        "transformers_modules."
    )
    assert checks["pipeline batch_size=3 equals one at a time (1e-4)"]["detail"]["max_abs_gap"] <= 1e-4
    assert "spatial_clap_hf" in checks["the package and the extras stayed unimported"]["detail"]["blocked"]


def test_mono_checkpoint_code_works_without_the_package(tiny_processor, tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "mono", tiny_processor, preset="tiny-mono", seed=1)
    report = run_remote_check(checkpoint, tmp_path)
    assert not any("mono audio into a spatial model" in r["check"] for r in report["checks"])


def _floor_dir() -> Path:
    return Path(os.environ.get("SPATIAL_CLAP_TRANSFORMERS_FLOOR", Path(sys.prefix) / "transformers-floor"))


def test_pyproject_floor_is_the_family_floor():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if d.startswith("transformers")]
    floor = spec.split(">=")[1].split(",")[0]

    def release(version: str) -> tuple[int, int, int]:
        parts = [int(p) for p in version.split(".")]
        return tuple(parts + [0] * (3 - len(parts)))

    assert release(floor) == release(MIN_TRANSFORMERS_VERSION)


def test_checkpoint_code_runs_on_the_transformers_floor(tiny_checkpoint, remote_report, tmp_path):
    floor = _floor_dir()
    if not any(floor.glob(f"transformers-{MIN_TRANSFORMERS_VERSION.removesuffix('.0')}*.dist-info")):
        pytest.skip(
            f"transformers {MIN_TRANSFORMERS_VERSION} is not installed in {floor} (scripts/setup_env.sh puts it "
            "there; or set SPATIAL_CLAP_TRANSFORMERS_FLOOR to a `pip install --no-deps --target` directory)"
        )
    report = run_remote_check(tiny_checkpoint, tmp_path, pythonpath=str(floor))
    assert report["versions"]["transformers"] == MIN_TRANSFORMERS_VERSION
    # The same checkpoint gives the same scores on the floor as on the pinned release.
    scores = {r["check"]: r.get("detail") for r in report["checks"]}
    pinned = {r["check"]: r.get("detail") for r in remote_report["checks"]}
    key = "pipeline inputs: WAV file, array + sampling_rate, raw/array dicts"
    assert scores[key]["file_scores"] == pytest.approx(pinned[key]["file_scores"], abs=1e-6)
