"""The zero-shot-spatial-audio-classification pipeline through ``transformers.pipeline`` on tiny saved checkpoints.

Without the package (remote code, extras blocked): tests/models/test_remote_code.py.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.io.wavfile
import torch
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY, get_supported_tasks

from spatial_clap_hf.inference import (
    DIRECTION_PHRASES,
    TASK,
    AudioDecodeError,
    SpatialZeroShotAudioClassificationPipeline,
    direction_captions,
    load_classifier,
    register_pipeline,
    where_is,
)
from spatial_clap_hf.models.spatial_clap.frontend_spatial_clap import SincResampler
from spatial_clap_hf.models.spatial_clap.modeling_spatial_clap import MAX_LOGIT_SCALE
from spatial_clap_hf.spatial.conventions import DEFAULT_PHRASES, PhraseSet, compose_caption, doa_class_center_deg

from conftest import make_stereo, save_tiny_checkpoint

_REGISTERED_ON_IMPORT = TASK in PIPELINE_REGISTRY.supported_tasks

SR = 16000
LABELS = ["A dog is barking on the left side.", "A man is speaking in front.", "Birds chirp in the front-left."]


@pytest.fixture(scope="module")
def spatial_pipe(tiny_checkpoint):
    return load_classifier(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def mono_checkpoint(tmp_path_factory, tiny_processor):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny_mono"), tiny_processor, preset="tiny-mono", seed=1)


@pytest.fixture(scope="module")
def mono_pipe(mono_checkpoint):
    return load_classifier(mono_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """(2, 16000) float32: 1 s of noise arriving from the left (channel 0 leads by 5 samples)."""
    return make_stereo(1, 1.0, SR, seed=3, delays=[5])[0].numpy()


def _direct_probs(pipe, clip: np.ndarray, captions: list[str]) -> np.ndarray:
    """softmax(exp(logit_scale) · cos(audio, caption)) from the model's own embeddings."""
    inputs = pipe.processor(text=captions, audio=[clip], sampling_rate=SR, return_tensors="pt", padding=True)
    with torch.no_grad():
        audio = pipe.model.get_audio_features(inputs["input_values"], attention_mask=inputs["audio_attention_mask"])
        text = pipe.model.get_text_features(inputs["input_ids"], attention_mask=inputs["attention_mask"])
        scale = pipe.model.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        logits = scale * audio.pooler_output @ text.pooler_output.t()
    return logits.softmax(-1)[0].numpy()


def _as_dict(scores: list[dict]) -> dict[str, float]:
    return {s["label"]: s["score"] for s in scores}


def test_transformers_pipeline_scores_are_the_softmax_of_scaled_similarities(spatial_pipe, clip):
    assert isinstance(spatial_pipe, SpatialZeroShotAudioClassificationPipeline)
    out = spatial_pipe({"array": clip, "sampling_rate": SR}, candidate_labels=LABELS)
    assert [set(s) for s in out] == [{"label", "score"}] * 3
    assert sorted(s["label"] for s in out) == sorted(LABELS)
    scores = [s["score"] for s in out]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-6)
    expected = dict(zip(LABELS, _direct_probs(spatial_pipe, clip, LABELS)))
    for label, score in _as_dict(out).items():
        assert score == pytest.approx(float(expected[label]), abs=1e-5)
    # Same answer from the tuple form, a bare array with sampling_rate, and a torch tensor.
    for same in (
        spatial_pipe((clip, SR), candidate_labels=LABELS),
        spatial_pipe(clip, sampling_rate=SR, candidate_labels=LABELS),
        spatial_pipe(torch.from_numpy(clip), sampling_rate=SR, candidate_labels=LABELS),
    ):
        assert _as_dict(same) == pytest.approx(_as_dict(out), abs=1e-6)
    assert [s["label"] for s in spatial_pipe((clip, SR), candidate_labels=LABELS, top_k=2)] == [
        s["label"] for s in out[:2]
    ]


def test_hypothesis_template_and_file_input(spatial_pipe, clip, tmp_path):
    words = ["dog", "bell"]
    templated = spatial_pipe((clip, SR), candidate_labels=words, hypothesis_template="A {} on the left side.")
    captions = ["A dog on the left side.", "A bell on the left side."]
    direct = dict(zip(words, _direct_probs(spatial_pipe, clip, captions)))
    assert _as_dict(templated) == pytest.approx({k: float(v) for k, v in direct.items()}, abs=1e-5)

    path = tmp_path / "scene.wav"
    scipy.io.wavfile.write(path, SR, clip.T)  # float32 WAV: exact round trip
    from_file = spatial_pipe(str(path), candidate_labels=LABELS)
    assert _as_dict(from_file) == pytest.approx(_as_dict(spatial_pipe((clip, SR), candidate_labels=LABELS)), abs=1e-6)
    # Encoded bytes and a list of inputs work too (one result list per input).
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, SR, clip.T)
    assert _as_dict(spatial_pipe(buffer.getvalue(), candidate_labels=LABELS)) == pytest.approx(_as_dict(from_file))
    batch = spatial_pipe([str(path), {"array": clip, "sampling_rate": SR}], candidate_labels=LABELS)
    assert len(batch) == 2 and _as_dict(batch[0]) == pytest.approx(_as_dict(batch[1]), abs=1e-6)


def test_other_sample_rates_are_resampled_by_the_processor(spatial_pipe, clip):
    clip_32k = SincResampler(SR, 32000)(torch.from_numpy(clip)).numpy()
    out = spatial_pipe((clip_32k, 32000), candidate_labels=LABELS)
    back = SincResampler(32000, SR)(torch.from_numpy(clip_32k)).numpy()
    expected = dict(zip(LABELS, map(float, _direct_probs(spatial_pipe, back, LABELS))))
    assert _as_dict(out) == pytest.approx(expected, abs=1e-4)


def test_spatial_model_rejects_mono_and_wrong_channels_with_the_fix(spatial_pipe, clip, tmp_path):
    with pytest.raises(ValueError, match=r"1-D \(mono\).*2 \(stereo\) channels.*mono checkpoint"):
        spatial_pipe(clip[0], sampling_rate=SR, candidate_labels=LABELS)
    with pytest.raises(ValueError, match=r"has 3 channel\(s\).*needs 2 \(stereo\)"):
        spatial_pipe((np.concatenate([clip, clip[:1]]), SR), candidate_labels=LABELS)
    with pytest.raises(ValueError, match=r"\(samples, channels\)"):
        spatial_pipe((clip.T.copy(), SR), candidate_labels=LABELS)
    mono_file = tmp_path / "mono.wav"
    scipy.io.wavfile.write(mono_file, SR, clip[0])
    with pytest.raises(ValueError, match=rf"audio file '{mono_file}' has 1 \(mono\) channel"):
        spatial_pipe(str(mono_file), candidate_labels=LABELS)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEnot really audio")
    with pytest.raises(AudioDecodeError, match="broken.wav"):
        spatial_pipe(str(broken), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="sampling_rate"):
        spatial_pipe(clip, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="candidate_labels"):
        spatial_pipe((clip, SR), candidate_labels=[])
    with pytest.raises(ValueError, match="hypothesis_template"):
        spatial_pipe((clip, SR), candidate_labels=LABELS, hypothesis_template="no slot")
    with pytest.raises(TypeError, match="unexpected arguments"):
        spatial_pipe((clip, SR), candidate_labels=LABELS, temperature=2.0)


def test_mono_checkpoint_takes_1d_audio_and_uses_only_the_channel_mean(mono_pipe, clip):
    assert not mono_pipe.is_spatial
    mean = clip.mean(axis=0)
    one_d = mono_pipe(mean, sampling_rate=SR, candidate_labels=LABELS)
    assert sum(s["score"] for s in one_d) == pytest.approx(1.0, abs=1e-6)
    stereo = mono_pipe((clip, SR), candidate_labels=LABELS)
    three = mono_pipe((np.stack([clip[0], clip[1], mean]), SR), candidate_labels=LABELS)
    assert _as_dict(stereo) == pytest.approx(_as_dict(one_d), abs=1e-5)
    assert _as_dict(three) == pytest.approx(_as_dict(one_d), abs=1e-5)
    # The model really reads the audio: another clip gives other scores.
    other = mono_pipe(np.sin(np.arange(SR) * 0.3).astype(np.float32), sampling_rate=SR, candidate_labels=LABELS)
    assert _as_dict(other) != pytest.approx(_as_dict(one_d), abs=1e-4)


def test_where_is_scores_the_five_direction_captions_in_design_order(spatial_pipe, clip):
    rows = direction_captions("a dog barking")
    assert [r["caption"] for r in rows] == [
        "A dog barking on the left side.",
        "A dog barking in the front-left.",
        "A dog barking in front.",
        "A dog barking in the front-right.",
        "A dog barking on the right side.",
    ]
    answer = where_is(spatial_pipe, (clip, SR), "a dog barking")
    assert [a["direction"] for a in answer] == list(DEFAULT_PHRASES.phrases)
    assert [a["azimuth_deg"] for a in answer] == [72.0, 36.0, 0.0, -36.0, -72.0]
    assert sum(a["score"] for a in answer) == pytest.approx(1.0, abs=1e-6)
    direct = _direct_probs(spatial_pipe, clip, [r["caption"] for r in rows])
    np.testing.assert_allclose([a["score"] for a in answer], direct, atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        where_is(spatial_pipe, (clip, SR), "  ")


def test_registration_is_idempotent_and_the_task_is_listed():
    register_pipeline()
    register_pipeline()
    assert PIPELINE_REGISTRY.supported_tasks[TASK]["impl"] is SpatialZeroShotAudioClassificationPipeline
    assert TASK in get_supported_tasks()


def test_import_of_the_package_registers_the_task():
    # Recorded while this module was collected: after `import spatial_clap_hf` (conftest) and before any
    # test or fixture called register_pipeline().
    assert _REGISTERED_ON_IMPORT, f"`import spatial_clap_hf` did not register {TASK!r} with PIPELINE_REGISTRY"


def test_pipeline_from_model_and_processor_objects(tiny_model, tiny_processor, spatial_pipe, clip):
    # An in-memory config names no custom pipeline: the task registered by `import spatial_clap_hf` builds it.
    pipe = pipeline(TASK, model=tiny_model, processor=tiny_processor, device="cpu")
    assert type(pipe) is SpatialZeroShotAudioClassificationPipeline
    # tiny_model has the seed and preset of tiny_checkpoint: the same weights, so the same answer.
    same = pipe((clip, SR), candidate_labels=LABELS)
    assert _as_dict(same) == pytest.approx(_as_dict(spatial_pipe((clip, SR), candidate_labels=LABELS)), abs=1e-6)


def test_batch_size_gives_the_one_at_a_time_scores(spatial_pipe, clip, tmp_path):
    path = tmp_path / "scene.wav"
    scipy.io.wavfile.write(path, SR, clip.T)
    others = [make_stereo(1, s, SR, seed=10 + i, delays=[d])[0].numpy() for i, (s, d) in enumerate([(0.5, -4), (2.0, 2)])]
    inputs = [
        str(path),
        {"array": others[0], "sampling_rate": SR},
        {"raw": others[1], "sampling_rate": SR},
        (clip[:, ::2].copy(), SR // 2),  # 8 kHz: resampled
        {"array": clip, "sampling_rate": SR},
    ]
    for kwargs in ({"candidate_labels": LABELS}, {"where": "a dog barking"}):
        single = [spatial_pipe(x, **kwargs) for x in inputs]
        for batch_size in (2, 4):
            batched = spatial_pipe(inputs, batch_size=batch_size, **kwargs)
            assert len(batched) == len(inputs)
            for one, many in zip(single, batched):
                assert [set(s) for s in many] == [set(s) for s in one]
                key = "label" if "candidate_labels" in kwargs else "direction"
                assert {s[key]: s["score"] for s in many} == pytest.approx({s[key]: s["score"] for s in one}, abs=1e-4)


def test_bad_inputs_fail_with_the_problem_and_the_fix(spatial_pipe, clip, tmp_path):
    empty = tmp_path / "empty.wav"
    scipy.io.wavfile.write(empty, SR, np.zeros((0, 2), dtype=np.int16))
    with pytest.raises(ValueError, match=r"audio file '.*empty\.wav' holds no samples"):
        spatial_pipe(str(empty), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="holds no samples"):
        spatial_pipe(np.zeros((2, 0), np.float32), sampling_rate=SR, candidate_labels=LABELS)
    nan = clip.copy()
    nan[1, 100] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        spatial_pipe(nan, sampling_rate=SR, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="'array' \\(or 'raw'\\) also needs 'sampling_rate'"):
        spatial_pipe({"raw": clip}, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="positive integer"):
        spatial_pipe({"array": clip, "sampling_rate": -16000}, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="files carry their own rate"):
        spatial_pipe(str(empty), sampling_rate=SR, candidate_labels=LABELS)
    with pytest.raises(AudioDecodeError, match="missing.wav.*file not found"):
        spatial_pipe(str(tmp_path / "missing.wav"), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="not both"):
        spatial_pipe((clip, SR), candidate_labels=LABELS, where="a dog")
    with pytest.raises(ValueError, match="description is empty"):
        spatial_pipe((clip, SR), where=" . ")


def test_direction_captions_are_the_training_captions():
    """The pipeline (checkpoint code, no package) composes "where" captions as training does."""
    assert DIRECTION_PHRASES == DEFAULT_PHRASES.phrases
    three = PhraseSet(phrases=("to the left", "straight ahead", "to the right"))
    for phrases in (DEFAULT_PHRASES, three):
        for description in ("a dog barking", "Rain on a roof.", "  an engine idles! "):
            rows = direction_captions(description, phrases)
            assert [r["direction"] for r in rows] == list(phrases.phrases)
            for k, row in enumerate(rows):
                assert row["azimuth_deg"] == pytest.approx(doa_class_center_deg(k, phrases))
                assert row["caption"] == compose_caption([description], [row["azimuth_deg"]], phrases)


def test_checkpoints_name_their_pipeline_for_transformers(tiny_checkpoint, spatial_pipe, clip, tmp_path):
    import json
    import shutil

    # config.json's custom_pipelines points at the checkpoint's own pipeline file ...
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_spatial_clap.SpatialZeroShotAudioClassificationPipeline"
    assert (tiny_checkpoint / "pipeline_spatial_clap.py").is_file()
    # ... which transformers runs only when asked to (even with the package imported) ...
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline(TASK, model=str(tiny_checkpoint), device="cpu")
    remote = pipeline(TASK, model=str(tiny_checkpoint), device="cpu", trust_remote_code=True)
    assert type(remote).__module__.startswith("transformers_modules.")
    expected = _as_dict(spatial_pipe((clip, SR), candidate_labels=LABELS))
    assert _as_dict(remote((clip, SR), candidate_labels=LABELS)) == pytest.approx(expected, abs=1e-6)
    # A checkpoint saved before configs named the pipeline goes through the package's registration.
    old = tmp_path / "old"
    shutil.copytree(tiny_checkpoint, old)
    del config["custom_pipelines"]
    (old / "config.json").write_text(json.dumps(config))
    (old / "pipeline_spatial_clap.py").unlink()
    register_pipeline()
    legacy = pipeline(TASK, model=str(old), device="cpu")
    assert type(legacy) is SpatialZeroShotAudioClassificationPipeline
    assert _as_dict(legacy((clip, SR), candidate_labels=LABELS)) == pytest.approx(expected, abs=1e-6)
