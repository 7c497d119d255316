"""Shared fixtures: tiny configs, models, tokenizer, processor and a saved tiny checkpoint.

Everything is built locally (random weights, a tokenizer trained on a few captions);
nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_server import HubStandIn

from spatial_clap_hf import (
    SeldNetConfig,
    SpatialClapFeatureExtractor,
    SpatialClapProcessor,
    create_model,
    get_config,
    train_caption_tokenizer,
)

SAMPLE_RATE = 16000
CHECK_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_remote_code.py"

TOY_CAPTIONS = [
    "A dog is barking on the left side.",
    "A man is speaking in front.",
    "Rain falls on a tin roof in the front-right.",
    "A car engine idles on the right side.",
    "Birds chirp in the front-left.",
    "A door slams shut in front.",
    "Water runs from a tap on the left side.",
    "A woman laughs on the right side.",
]


def make_stereo(
    batch: int,
    seconds: float,
    sample_rate: int = SAMPLE_RATE,
    seed: int = 0,
    delays: list[int] | None = None,
) -> torch.Tensor:
    """Stereo noise bursts ``(batch, 2, samples)`` float32; channel 1 lags channel 0 by ``delays[b]`` samples.

    A positive delay means the sound reaches channel 0 (left) first, i.e. a source on the left.
    """
    gen = torch.Generator().manual_seed(seed)
    samples = int(round(seconds * sample_rate))
    delays = delays if delays is not None else [0] * batch
    pad = max(abs(d) for d in delays) + 1
    clips = []
    for b in range(batch):
        source = 0.1 * torch.randn(samples + 2 * pad, generator=gen)
        d = delays[b]
        left = source[pad : pad + samples]
        right = source[pad - d : pad - d + samples]
        clips.append(torch.stack([left, right]))
    return torch.stack(clips).float()


@pytest.fixture(autouse=True)
def _single_thread():
    """Keep torch on one thread: the test machine's 2 cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_config():
    """The "tiny" preset config (stereo, SELD spatial encoder, 4 s clips)."""
    return get_config("tiny")


@pytest.fixture
def tiny_model():
    """A seeded "tiny" SpatialClapModel in eval mode."""
    torch.manual_seed(0)
    return create_model("tiny").eval()


@pytest.fixture
def tiny_seldnet_config():
    """A small SELD config: stereo, mag_ipd, 256 bins, 4 classes."""
    return SeldNetConfig(
        num_classes=4,
        input_features="mag_ipd",
        max_frequency_bins=256,
        conv_filters=[8, 8, 8],
        frequency_pool_sizes=[8, 8, 2],
        gru_hidden_size=16,
        head_hidden_size=16,
    )


@pytest.fixture(scope="session")
def caption_tokenizer():
    """A byte-level BPE tokenizer (RoBERTa special tokens) trained on the toy captions."""
    return train_caption_tokenizer(TOY_CAPTIONS * 4, vocab_size=400, model_max_length=64)


@pytest.fixture(scope="session")
def tiny_processor(caption_tokenizer):
    """Processor for the "tiny" preset: stereo, 16 kHz, 4 s clips."""
    config = get_config("tiny")
    feature_extractor = SpatialClapFeatureExtractor(
        num_channels=2, sampling_rate=config.sample_rate, max_length_s=config.max_length_s
    )
    return SpatialClapProcessor(feature_extractor, caption_tokenizer)


def save_tiny_checkpoint(path, processor, preset: str = "tiny", seed: int = 0):
    """Save a seeded ``preset`` model with ``processor`` into ``path`` (auto_map + model files included)."""
    torch.manual_seed(seed)
    create_model(preset).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_processor):
    """Directory with a saved seeded "tiny" model and its processor."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"), tiny_processor)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def hub():
    """A running Hub stand-in (``tests/hub_server.py``) with no repositories yet. The test fails at
    teardown if a client asked it for something it does not serve, naming the requests."""
    stand_in = HubStandIn().start()
    yield stand_in
    stand_in.stop()
    assert not stand_in.unserved, f"requests the Hub stand-in does not serve: {stand_in.unserved}"


def hub_env(hub: HubStandIn, home: Path, token: str = "hf_test_token") -> dict[str, str]:
    """The environment of a subprocess that talks to ``hub`` with ``token``: ``HF_ENDPOINT`` at the
    stand-in, ``HF_HOME`` (every cache) under ``home``, offline modes off, one thread, and Xet
    uploads off (the stand-in has no Xet storage: LFS files go through the LFS batch API)."""
    offline = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in offline}
    env.update(HF_ENDPOINT=hub.endpoint, HF_TOKEN=token, HF_HOME=str(home), OMP_NUM_THREADS="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
    return env


def run_python(code: str, env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    """Run ``code`` with ``args`` in a fresh interpreter with ``env``; asserts it exits 0, returns its stdout."""
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-6000:]
    return result.stdout


def run_remote_check(model_dir: Path, workdir: Path, pythonpath: str | None = None) -> dict:
    """Run scripts/check_remote_code.py on ``model_dir`` in a fresh interpreter; returns its JSON report."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(workdir / "modules"), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # the package must not be reachable through it either
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    out = workdir / "report.json"
    result = subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), str(model_dir), "--json", str(out)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.is_file(), result.stderr[-4000:]
    report = json.loads(out.read_text())
    failed = [f"{r['check']}: {r['error']}\n{r['trace']}" for r in report["checks"] if not r["ok"]]
    assert result.returncode == 0 and report["ok"], "\n".join(failed) or result.stderr[-4000:]
    return report
