"""The embedded synthetic corpus: schema, determinism, coverage, captions, signal sanity, speed."""

from __future__ import annotations

import json
import logging
import re
import time

import numpy as np
import pytest

from spatial_clap_hf.cli import main as cli_main
from spatial_clap_hf.data.audio_io import decoded_to_array
from spatial_clap_hf.data.audiocaps import load_corpus, load_label_names
from spatial_clap_hf.data.schema import SOURCE_FEATURES
from spatial_clap_hf.data.synthetic import (
    CACHE_KEY_FILE,
    SYNTHETIC_CLASSES,
    ClipSpec,
    caption_for,
    generate_clips,
    make_synthetic_corpus,
    synthesize_clip,
)
from spatial_clap_hf.spatial.conventions import compose_caption

SR = 16000
K = len(SYNTHETIC_CLASSES)


def _arrays(split) -> list[np.ndarray]:
    return [decoded_to_array(row["audio"])[0] for row in split]


@pytest.fixture(scope="module")
def small_corpus():
    return make_synthetic_corpus(n_train=K + 3, n_validation=5, n_test=4, clip_seconds=1.0, sample_rate=SR, seed=3)


def test_schema_and_sizes(small_corpus):
    assert {s: len(d) for s, d in small_corpus.items()} == {"train": K + 3, "validation": 5, "test": 4}
    for split in small_corpus.values():
        assert split.features == SOURCE_FEATURES
    row = small_corpus["train"][0]
    assert len(row["captions"]) == 1 and row["captions"][0].endswith(".")
    assert row["labels"][0] in SYNTHETIC_CLASSES and len(row["labels"]) == 1
    audio, sr = decoded_to_array(row["audio"])
    assert sr == SR and audio.shape == (1, SR) and audio.dtype == np.float32
    assert len(set(small_corpus["train"]["id"])) == K + 3


def test_every_class_present_and_balanced(small_corpus):
    assert K >= 16
    labels = [row[0] for row in small_corpus["train"]["labels"]]
    assert set(labels[:K]) == set(SYNTHETIC_CLASSES)  # each block of K clips covers all classes


def test_deterministic_for_a_seed(small_corpus):
    again = make_synthetic_corpus(n_train=K + 3, n_validation=5, n_test=4, clip_seconds=1.0, sample_rate=SR, seed=3)
    for split in ("train", "test"):
        assert again[split]["captions"] == small_corpus[split]["captions"]
        for a, b in zip(_arrays(again[split]), _arrays(small_corpus[split])):
            np.testing.assert_array_equal(a, b)
    other = make_synthetic_corpus(n_train=K + 3, n_validation=0, n_test=0, clip_seconds=1.0, sample_rate=SR, seed=4)
    assert other["train"]["captions"] != small_corpus["train"]["captions"]
    assert not np.array_equal(_arrays(other["train"])[0], _arrays(small_corpus["train"])[0])
    # clip i depends on (seed, split, i) only: a smaller split is a prefix of a larger one
    prefix = [c[2] for c in generate_clips(3, split="validation", clip_seconds=1.0, seed=3)]
    assert prefix == [c[0] for c in small_corpus["validation"]["captions"][:3]]


def test_audio_finite_in_range_and_loudness(small_corpus):
    for split in small_corpus.values():
        for audio in _arrays(split):
            assert np.all(np.isfinite(audio))
            assert 0.1 < np.max(np.abs(audio)) <= 0.91


def test_caption_diversity_and_content():
    clips = list(generate_clips(200, split="test", clip_seconds=0.5, seed=0))
    captions = [c[2] for c in clips]
    assert len(set(captions)) >= 0.8 * len(captions)
    for _, _, caption, spec in clips:
        assert caption[0].isupper() and caption.endswith(".") and ".." not in caption
        assert not re.search(r"\ba [aeiou]", caption.lower()) and not re.search(r"\ban [^aeiou]", caption.lower())
        loud_words = {"soft": ("soft", "quiet", "faint"), "loud": ("loud", "strong", "intense", "powerfully")}
        assert any(w in caption.lower() for w in loud_words[spec.loudness])
        if spec.pitch is not None:
            assert any(w in caption.lower() for w in {"low": ("low", "deep"), "mid": ("mid", "medium"),
                                                       "high": ("high", "shrill")}[spec.pitch])
    # a spatial phrase appends naturally
    assert compose_caption([captions[0]], [90.0]).endswith("on the left side.")


def _centroid_hz(audio: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(audio[0])) ** 2
    freqs = np.fft.rfftfreq(audio.shape[1], 1.0 / SR)
    return float((power * freqs).sum() / power.sum())


@pytest.mark.parametrize("label", ["Tone", "Beep", "Bell", "Buzz", "Siren", "Whistle", "Hum", "Drum", "Bird chirp"])
def test_pitch_attribute_orders_spectral_centroid(label):
    rate = "slow" if label in ("Beep", "Siren", "Drum", "Bird chirp") else None
    centroids = [
        _centroid_hz(synthesize_clip(ClipSpec(label, pitch, rate, "loud", "long"), clip_seconds=1.0,
                                     sample_rate=SR, rng=np.random.default_rng(1)))
        for pitch in ("low", "mid", "high")
    ]
    assert centroids[0] < centroids[1] < centroids[2], centroids


def test_classes_spectrally_distinct():
    rng = np.random.default_rng(0)
    rumble = synthesize_clip(ClipSpec("Rumble", None, None, "loud", "long"), clip_seconds=1.0, sample_rate=SR, rng=rng)
    hiss = synthesize_clip(ClipSpec("Hiss", None, None, "loud", "long"), clip_seconds=1.0, sample_rate=SR, rng=rng)
    assert _centroid_hz(rumble) < 300 and _centroid_hz(hiss) > 3000

    # nearest-class-mean on coarse log-band spectra separates the classes far above chance (1/K)
    def features(audio):
        power = np.abs(np.fft.rfft(audio[0])) ** 2
        freqs = np.fft.rfftfreq(audio.shape[1], 1.0 / SR)
        edges = np.geomspace(40, SR / 2, 21)
        bands = np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
        return np.log(bands / bands.sum() + 1e-10)

    def data(split):
        clips = list(generate_clips(8 * K, split=split, clip_seconds=1.0, seed=0))
        return np.stack([features(c[1]) for c in clips]), np.array([SYNTHETIC_CLASSES.index(c[3].label) for c in clips])

    x_train, y_train = data("train")
    x_test, y_test = data("test")
    means = np.stack([x_train[y_train == k].mean(0) for k in range(K)])
    predicted = np.argmin(((x_test[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == y_test).mean() > 0.5


def test_duration_attribute_sets_event_length():
    def active_fraction(duration):
        audio = synthesize_clip(ClipSpec("Tone", "mid", None, "loud", duration), clip_seconds=2.0,
                                sample_rate=SR, rng=np.random.default_rng(5))
        return np.mean(np.abs(audio) > 1e-4)

    assert active_fraction("short") < 0.32 < 0.5 < active_fraction("long") < 0.9


def test_generation_speed():
    start = time.perf_counter()
    clips = list(generate_clips(200, split="train", clip_seconds=4.0, seed=0))
    elapsed = time.perf_counter() - start
    assert clips[0][1].shape == (1, 4 * SR)
    assert elapsed < 6.0, f"200 clips of 4 s took {elapsed:.1f} s"  # ≈ 0.5 s on one free core


def test_saved_corpus_is_reused_and_regenerated(tmp_path, caplog):
    out = tmp_path / "corpus"
    kwargs = dict(n_train=3, n_validation=2, n_test=2, clip_seconds=0.5, sample_rate=SR, seed=1)
    first = make_synthetic_corpus(**kwargs, output_dir=out)
    assert json.loads((out / CACHE_KEY_FILE).read_text())["n_train"] == 3
    assert load_label_names(out) == SYNTHETIC_CLASSES
    with caplog.at_level(logging.INFO, logger="spatial_clap_hf.data.synthetic"):
        second = make_synthetic_corpus(**kwargs, output_dir=out)
    assert "Reusing" in caplog.text
    assert second["train"]["captions"] == first["train"]["captions"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="spatial_clap_hf.data.synthetic"):
        third = make_synthetic_corpus(**{**kwargs, "n_train": 4}, output_dir=out)
    assert "Regenerating" in caplog.text and len(third["train"]) == 4
    assert len(load_corpus(out)["train"]) == 4
    empty = make_synthetic_corpus(**{**kwargs, "n_test": 0}, output_dir=out)  # an empty split saves and loads
    assert len(empty["test"]) == 0 and empty["test"].features == SOURCE_FEATURES


def test_cli_make_corpus(tmp_path):
    out = tmp_path / "cli"
    args = ["make-corpus", "--output-dir", str(out), "--n-train", "2", "--n-validation", "1", "--n-test", "1",
            "--clip-seconds", "0.5", "--seed", "7"]
    assert cli_main(args) == 0
    corpus = load_corpus(out)
    assert [len(corpus[s]) for s in ("train", "validation", "test")] == [2, 1, 1]
    assert decoded_to_array(corpus["test"][0]["audio"])[0].shape == (1, SR // 2)
    (out / "label_names.json").unlink()  # without the file: the sorted labels found in the corpus
    found = sorted({row[0] for split in corpus.values() for row in split["labels"]})
    assert load_label_names(out) == found


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_train"):
        make_synthetic_corpus(n_train=-1, n_validation=0, n_test=0)
    with pytest.raises(ValueError, match="sample_rate"):
        make_synthetic_corpus(n_train=1, n_validation=0, n_test=0, sample_rate=4000)
    with pytest.raises(ValueError, match="clip_seconds"):
        make_synthetic_corpus(n_train=1, n_validation=0, n_test=0, clip_seconds=0.1)
    with pytest.raises(ValueError, match="SYNTHETIC_CLASSES"):
        caption_for(ClipSpec("Dog", None, None, "soft", "short"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="pitch"):
        synthesize_clip(ClipSpec("Tone", None, None, "soft", "short"), clip_seconds=1.0, sample_rate=SR,
                        rng=np.random.default_rng(0))
