#!/usr/bin/env python
"""Check that a saved Spatial CLAP checkpoint works from its own code, as for a user who never installed the package.

    python scripts/check_remote_code.py runs/quickstart/model [--json report.json]

The package and the optional extras are blocked first: ``spatial_clap_hf``, torchaudio,
torchcodec, datasets, accelerate, pyroomacoustics, evaluate, scipy, matplotlib and
tensorboard cannot be imported in this process (``None`` in ``sys.modules``, Python's own
"not importable" marker: ``import`` raises ``ImportError`` and ``importlib.util.find_spec``
reports the package as absent, as after an uninstall). Only torch, transformers, numpy and
the standard library remain. Then, with ``trust_remote_code=True``:

- ``AutoConfig``, ``AutoModel``, ``AutoFeatureExtractor`` and ``AutoProcessor`` load, from the
  checkpoint's files;
- the processor prepares audio at the model's rate and at 44.1 kHz (resampled: the same
  band-limited signal must come out, away from the clip's edges), and the model runs on it;
- ``pipeline("zero-shot-spatial-audio-classification", model=DIR, trust_remote_code=True)``
  resolves through config.json's ``custom_pipelines`` and scores a WAV file, an array with
  ``sampling_rate=``, ``{"raw"/"array", "sampling_rate"}`` dicts and a list, batched
  (``batch_size=3`` gives the one-at-a-time scores within 1e-4), and ``where=``;
- bad input fails with clear errors: mono audio into a stereo model, a missing sampling rate,
  NaN, an empty WAV file and a zero-length array.

Prints one JSON report (which checks ran, versions, module names) and exits 0 when every
check passes, 1 otherwise. Needs no network (``HF_HUB_OFFLINE=1`` is set) and no GPU.
Standard library + numpy + torch + transformers only: it must not depend on the package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
import wave
from pathlib import Path

#: Importable in a core-less environment: nothing of these. The first is the package itself.
BLOCKED = (
    "spatial_clap_hf",
    "torchaudio",
    "torchcodec",
    "datasets",
    "accelerate",
    "pyroomacoustics",
    "evaluate",
    "scipy",
    "matplotlib",
    "tensorboard",
)

TASK = "zero-shot-spatial-audio-classification"


def block_packages(names=BLOCKED) -> None:
    """Make ``names`` unimportable in this process, as if uninstalled (call before importing anything else).

    ``None`` in ``sys.modules`` is Python's marker for "cannot be imported": ``import name`` (and
    of any submodule) raises ``ModuleNotFoundError``, and ``importlib.util.find_spec(name)``
    returns ``None``, which is how transformers probes optional packages.
    """
    for name in names:
        if sys.modules.get(name) is not None:
            raise RuntimeError(f"{name} is already imported; block packages before importing anything else.")
        sys.modules[name] = None


def blocked_packages_untouched(names=BLOCKED) -> list[str]:
    """Blocked names that something managed to import anyway (should be empty)."""
    leaked = [n for n in names if sys.modules.get(n, None) is not None]
    leaked += [m for m in sys.modules if m.split(".")[0] in names and "." in m and sys.modules[m] is not None]
    return sorted(set(leaked))


# ------------------------------------------------------------------------------------ test signals


def stereo_tones(rate: int, seconds: float, delay_s: float = 2e-4, seed: int = 0):
    """A band-limited stereo clip (float32 ``(2, samples)``): a few tones below 3 kHz, channel 1 lagging
    channel 0 by ``delay_s`` (a source on the left). Defined analytically, so it can be drawn at any rate."""
    import numpy as np

    rng = np.random.default_rng(seed)
    freqs = rng.uniform(150.0, 3000.0, size=6)
    phases = rng.uniform(0.0, 2 * np.pi, size=6)
    t = np.arange(int(round(seconds * rate))) / rate

    def channel(shift: float):
        return sum(0.05 * np.sin(2 * np.pi * f * (t - shift) + p) for f, p in zip(freqs, phases))

    return np.stack([channel(0.0), channel(delay_s)]).astype(np.float32)


def write_wav(path: Path, stereo, rate: int) -> None:
    """16-bit PCM WAV of a float ``(channels, samples)`` array (standard library only)."""
    import numpy as np

    pcm = np.clip(np.round(np.asarray(stereo).T * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(pcm.shape[1] if pcm.ndim == 2 else 1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())


# ----------------------------------------------------------------------------------------- checks


class Checks:
    def __init__(self) -> None:
        self.results: list[dict] = []

    def run(self, name: str, fn) -> object:
        try:
            detail = fn()
        except Exception as err:  # noqa: BLE001  (every failure is reported, then the next check runs)
            self.results.append(
                {
                    "check": name,
                    "ok": False,
                    "error": f"{type(err).__name__}: {err}",
                    "trace": traceback.format_exc()[-2000:],
                }
            )
            return None
        self.results.append({"check": name, "ok": True, **({"detail": detail} if detail is not None else {})})
        return detail

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.results)


def expect_error(call, error_type, *fragments: str) -> str:
    """Run ``call``; it must raise ``error_type`` whose message holds every fragment. Returns the message."""
    try:
        call()
    except error_type as err:
        message = str(err)
        missing = [f for f in fragments if f not in message]
        if missing:
            raise AssertionError(f"error message lacks {missing}: {message!r}") from err
        return message
    raise AssertionError(f"expected {error_type.__name__} mentioning {fragments}, but the call succeeded")


def check_checkpoint(model_dir: str, batch_size: int = 3) -> dict:
    """Run every check on ``model_dir``; returns the report (``report["ok"]`` says whether all passed)."""
    block_packages()
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor, pipeline

    torch.manual_seed(0)
    checks = Checks()
    remote = {"trust_remote_code": True}
    state: dict = {}

    def remote_module(obj) -> str:
        module = type(obj).__module__
        if not module.startswith("transformers_modules."):
            raise AssertionError(f"{type(obj).__name__} comes from {module}, not from the checkpoint's code")
        return module

    def load_auto_classes():
        state["config"] = AutoConfig.from_pretrained(model_dir, **remote)
        state["model"] = AutoModel.from_pretrained(model_dir, **remote).eval()
        state["feature_extractor"] = AutoFeatureExtractor.from_pretrained(model_dir, **remote)
        state["processor"] = AutoProcessor.from_pretrained(model_dir, **remote)
        if state["config"].model_type != "spatial_clap":
            raise AssertionError(f"model_type is {state['config'].model_type!r}, not 'spatial_clap'")
        return {key: remote_module(state[key]) for key in ("config", "model", "feature_extractor", "processor")}

    if checks.run("auto classes load from the checkpoint's code", load_auto_classes) is None:
        return _report(checks, model_dir)

    config, model, processor = state["config"], state["model"], state["processor"]
    rate = int(processor.feature_extractor.sampling_rate)
    spatial = config.spatial_encoder != "none"
    channels = int(processor.feature_extractor.num_channels)
    seconds = min(1.0, float(processor.feature_extractor.max_length_s))
    captions = ["A bell is ringing on the left side.", "A bell is ringing on the right side.", "A dog barks in front."]

    def processor_at(sample_rate: int):
        clip = stereo_tones(sample_rate, seconds)[:channels]
        inputs = processor(text=captions, audio=[clip], sampling_rate=sample_rate, return_tensors="pt", padding=True)
        expected = (1, channels, int(round(processor.feature_extractor.max_length_s * rate)))
        if tuple(inputs["input_values"].shape) != expected:
            raise AssertionError(f"input_values has shape {tuple(inputs['input_values'].shape)}, expected {expected}")
        with torch.no_grad():
            out = model(**inputs)
        probs = out.logits_per_audio.softmax(-1)
        if not torch.isfinite(out.logits_per_audio).all() or abs(float(probs.sum()) - 1.0) > 1e-5:
            raise AssertionError("the model's logits are not finite or their softmax does not sum to 1")
        return inputs["input_values"][0]

    def processor_native():
        state["native"] = processor_at(rate)
        return {"sampling_rate": rate}

    def processor_resampled():
        resampled = processor_at(44100)
        native = state["native"]
        n = int(round(seconds * rate))
        edge = rate // 100  # 10 ms: the resampler's zero-padded edges differ from the infinite signal's
        error = float((resampled[:, edge : n - edge] - native[:, edge : n - edge]).abs().max())
        if error > 2e-3:
            raise AssertionError(
                f"44.1 kHz audio resampled to {rate} Hz differs from the {rate} Hz signal by {error:.2e}"
            )
        return {"sampling_rate": 44100, "max_abs_error_vs_native": error}

    checks.run(f"processor at the model rate ({rate} Hz) and the model run", processor_native)
    if "native" in state:
        checks.run("processor at 44.1 kHz (resampled) and the model run", processor_resampled)

    def load_pipeline():
        state["pipe"] = pipeline(TASK, model=model_dir, device="cpu", **remote)
        return {"pipeline_module": remote_module(state["pipe"])}

    if checks.run("pipeline by task name resolves through custom_pipelines", load_pipeline) is None:
        return _report(checks, model_dir)
    pipe = state["pipe"]
    workdir = Path(tempfile.mkdtemp(prefix="spatial_clap_check_"))
    clips = [stereo_tones(rate, seconds, delay_s=d, seed=i)[:channels] for i, d in enumerate([3e-4, 0.0, -3e-4, 1e-4])]
    wav = workdir / "clip.wav"
    write_wav(wav, clips[0], rate)

    def scores(result):
        return {s["label"]: s["score"] for s in result}

    def input_forms():
        from_file = scores(pipe(str(wav), candidate_labels=captions))
        pcm = (np.round(clips[0] * 32767.0) / 32768.0).astype(np.float32)  # what the 16-bit file decodes to
        forms = {
            "array + sampling_rate": scores(pipe(pcm, sampling_rate=rate, candidate_labels=captions)),
            "raw dict": scores(pipe({"raw": pcm, "sampling_rate": rate}, candidate_labels=captions)),
            "array dict": scores(pipe({"array": pcm, "sampling_rate": rate}, candidate_labels=captions)),
        }
        if abs(sum(from_file.values()) - 1.0) > 1e-5:
            raise AssertionError(f"scores of the file do not sum to 1: {from_file}")
        for name, other in forms.items():  # the same samples, so the same scores
            gap = max(abs(other[k] - from_file[k]) for k in captions)
            if gap > 1e-6:
                raise AssertionError(f"{name} scores differ from the WAV file's by {gap:.2e}")
        return {"file_scores": from_file}

    def batched():
        inputs = [{"array": c, "sampling_rate": rate} for c in clips]
        one_by_one = [scores(pipe(x, candidate_labels=captions)) for x in inputs]
        together = [scores(r) for r in pipe(inputs, candidate_labels=captions, batch_size=batch_size)]
        if len(together) != len(inputs):
            raise AssertionError(f"{len(inputs)} inputs gave {len(together)} results")
        gap = max(abs(a[k] - b[k]) for a, b in zip(one_by_one, together) for k in captions)
        if gap > 1e-4:
            raise AssertionError(f"batch_size={batch_size} scores differ from one-at-a-time scores by {gap:.2e}")
        return {"batch_size": batch_size, "clips": len(inputs), "max_abs_gap": gap}

    def where():
        answer = pipe(str(wav), where="a bell ringing")
        if len(answer) != 5 or abs(sum(a["score"] for a in answer) - 1.0) > 1e-5:
            raise AssertionError(f"where= should score five direction sectors summing to 1, got {answer}")
        return {a["direction"]: round(a["score"], 4) for a in answer}

    checks.run("pipeline inputs: WAV file, array + sampling_rate, raw/array dicts", input_forms)
    checks.run(f"pipeline batch_size={batch_size} equals one at a time (1e-4)", batched)
    checks.run("pipeline where= scores the direction sectors", where)

    empty_wav = workdir / "empty.wav"
    write_wav(empty_wav, np.zeros((channels, 0), dtype=np.float32), rate)
    errors = {
        "missing sampling rate": lambda: expect_error(
            lambda: pipe(clips[0], candidate_labels=captions), ValueError, "sampling_rate"
        ),
        "NaN samples": lambda: expect_error(
            lambda: pipe(np.full_like(clips[0], np.nan), sampling_rate=rate, candidate_labels=captions),
            ValueError,
            "NaN",
        ),
        "empty WAV file": lambda: expect_error(
            lambda: pipe(str(empty_wav), candidate_labels=captions), ValueError, "empty.wav", "no samples"
        ),
        "zero-length array": lambda: expect_error(
            lambda: pipe(np.zeros((channels, 0), np.float32), sampling_rate=rate, candidate_labels=captions),
            ValueError,
            "no samples",
        ),
    }
    if spatial:
        errors["mono audio into a spatial model"] = lambda: expect_error(
            lambda: pipe(clips[0][0], sampling_rate=rate, candidate_labels=captions),
            ValueError,
            "1-D (mono)",
            "channels",
        )
    for name, check in errors.items():
        checks.run(f"clear error: {name}", check)

    def nothing_leaked():
        leaked = blocked_packages_untouched()
        if leaked:
            raise AssertionError(f"blocked packages were imported anyway: {leaked}")
        return {"blocked": list(BLOCKED)}

    checks.run("the package and the extras stayed unimported", nothing_leaked)
    return _report(checks, model_dir)


def _report(checks: Checks, model_dir: str) -> dict:
    import numpy
    import torch
    import transformers

    return {
        "model": str(model_dir),
        "ok": checks.ok,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": numpy.__version__},
        "checks": checks.results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="a saved Spatial CLAP model directory (save_pretrained)")
    parser.add_argument("--json", metavar="OUT", help="also write the JSON report to this file")
    parser.add_argument("--batch-size", type=int, default=3, help="batch size of the batching check (default 3)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (Path(args.model_dir) / "config.json").is_file():
        print(f"{args.model_dir} holds no config.json: not a saved model directory.", file=sys.stderr)
        return 2
    report = check_checkpoint(args.model_dir, batch_size=args.batch_size)
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        Path(args.json).write_text(text)
    summary = {k: v for k, v in report.items() if k != "checks"}
    summary["checks"] = [{k: v for k, v in r.items() if k != "trace"} for r in report["checks"]]
    print(json.dumps(summary, indent=2, default=str))
    for result in report["checks"]:
        print(f"{'PASS' if result['ok'] else 'FAIL'}  {result['check']}", file=sys.stderr)
        if not result["ok"]:
            print(result["trace"], file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
