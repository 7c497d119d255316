"""Evaluation sets from a tiny synthetic corpus and a tiny RIR bank (held-out rooms only)."""

import json
import logging
from collections import Counter

import datasets
import numpy as np
import pytest
import scipy.signal

from spatial_clap_hf.data.eval_sets import build_eval_sets
from spatial_clap_hf.data.schema import (
    EVAL_SET_NAMES,
    SOURCE_FEATURES,
    assignment_features,
    doa_features,
    retrieval_features,
)
from spatial_clap_hf.spatial import DEFAULT_PHRASES, compose_caption, doa_class, fold_azimuth
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig

FS = 16000
CLIP_SECONDS = 0.25
SIZES = dict(n_doa=10, n_doa_val=7, n_assignment2=8, n_assignment3=6, n_retrieval=8)
KINDS = ["tone", "noise", "chirp", "clicks"]


def _clip(kind: str, i: int, n: int, rng) -> np.ndarray:
    t = np.arange(n) / FS
    f = 200.0 + 150.0 * i
    if kind == "tone":
        x = np.sin(2 * np.pi * f * t)
    elif kind == "noise":
        x = rng.standard_normal(n)
    elif kind == "chirp":
        x = scipy.signal.chirp(t, f, t[-1], 4 * f)
    else:
        x = (np.arange(n) % (200 + 20 * i) == 0).astype(float)
    return (0.3 * x).astype(np.float32)


def _split(prefix: str, count: int, seed: int, odd_clip: bool = False, duplicate: bool = False) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rows = {"id": [], "audio": [], "captions": [], "labels": []}
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        n = int(FS * (0.2 + 0.02 * i))  # shorter and longer than the 0.25 s clips
        rows["id"].append(f"{prefix}{i:02d}")
        rows["audio"].append({"array": _clip(kind, i, n, rng), "sampling_rate": FS})
        rows["captions"].append([f"A {kind} sound number {i}", f"Another caption {i}"])
        rows["labels"].append([kind])
    if odd_clip:  # stereo at 8 kHz: must be down-mixed and resampled, with warnings
        rows["id"].append(f"{prefix}odd")
        rows["audio"].append({"array": 0.1 * rng.standard_normal((2, 4000)).astype(np.float32), "sampling_rate": 8000})
        rows["captions"].append(["A stereo rumble"])
        rows["labels"].append(["rumble"])
    if duplicate:  # same caption as clip 0: retrieval must not use both
        rows["id"].append(f"{prefix}dup")
        rows["audio"].append({"array": _clip("tone", 0, FS // 4, rng), "sampling_rate": FS})
        rows["captions"].append(["A tone sound number 0."])
        rows["labels"].append(["tone"])
    return datasets.Dataset.from_dict(rows, features=SOURCE_FEATURES)


@pytest.fixture(scope="module")
def corpus():
    return datasets.DatasetDict(
        {"validation": _split("v", 5, 1, odd_clip=True), "test": _split("t", 10, 2, duplicate=True)}
    )


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    config = RirBankConfig(max_rooms_per_split=2, azimuth_step_deg=30)
    return RirBank.build(tmp_path_factory.mktemp("bank"), config, splits=["validation", "test"], show_progress=False)


@pytest.fixture(scope="module")
def built(corpus, bank, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    handler = _Records()
    logging.getLogger("spatial_clap_hf").addHandler(handler)
    try:
        sets = build_eval_sets(corpus, bank, out, seed=3, sample_rate=FS, clip_seconds=CLIP_SECONDS, **SIZES)
    finally:
        logging.getLogger("spatial_clap_hf").removeHandler(handler)
    return out, sets, handler.messages


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _strip_directions(caption: str) -> str:
    for phrase in DEFAULT_PHRASES.phrases:
        caption = caption.replace(" " + phrase, "")
    return caption


def _captions(corpus_split) -> dict[str, str]:
    return {i: c[0] for i, c in zip(corpus_split["id"], corpus_split["captions"])}


def test_all_sets_written_with_schema(built):
    out, sets, _ = built
    assert list(sets) == list(EVAL_SET_NAMES)
    expected = {"doa": doa_features(), "doa_val": doa_features(), "assignment2": assignment_features(),
                "assignment3": assignment_features(), "retrieval": retrieval_features()}
    for name, ds in sets.items():
        assert ds.features == expected[name]
        assert (out / name / "dataset_info.json").exists()
    for name, ds in sets.items():
        assert len(datasets.load_from_disk(str(out / name))) == len(ds)
    assert len(sets["doa"]) == 10 and len(sets["doa_val"]) == 7
    assert len(sets["assignment2"]) == 8 and len(sets["assignment3"]) == 6
    wave = sets["doa"].with_format("numpy")[0]["waveform"]
    assert wave.shape == (2, int(CLIP_SECONDS * FS)) and wave.dtype == np.float32


def test_only_held_out_rooms_and_clips(built, bank, corpus):
    _, sets, _ = built
    test_ids, val_ids = set(corpus["test"]["id"]), set(corpus["validation"]["id"])
    for name, ds in sets.items():
        rooms = set(bank.rooms("validation" if name == "doa_val" else "test"))
        clips = val_ids if name == "doa_val" else test_ids
        assert set(ds["room_id"]) <= rooms, name
        assert {s for row in ds["source_ids"] for s in row} <= clips, name
        assert set(ds["sampling_rate"]) == {FS}


def test_doa_rows_match_their_azimuth(built, corpus):
    _, sets, _ = built
    for name, split in (("doa", "test"), ("doa_val", "validation")):
        captions = _captions(corpus[split])
        classes = []
        for row in sets[name]:
            (az,) = row["azimuths_deg"]
            assert row["doa_class"] == doa_class(az)
            assert row["folded_azimuth_deg"] == pytest.approx(fold_azimuth(az), abs=1e-4)
            caption = captions[row["source_ids"][0]]
            assert row["caption_src"] == compose_caption([caption])
            assert row["caption_sp_src"] == compose_caption([caption], [az])
            classes.append(row["doa_class"])
        counts = Counter(classes)
        assert set(counts) == set(range(5)) and max(counts.values()) - min(counts.values()) <= 1  # class-balanced


def test_doa_waveform_is_the_convolved_clip(built, corpus, bank):
    _, sets, _ = built
    row = sets["doa"].with_format("numpy")[0]
    index = list(corpus["test"]["id"]).index(row["source_ids"][0])
    audio = corpus["test"][index]["audio"].get_all_samples()
    clip = np.zeros(int(CLIP_SECONDS * FS))
    mono = audio.data.numpy().mean(axis=0)[: clip.size]
    clip[: mono.size] = mono
    rir = bank.get(int(row["room_id"]), float(row["azimuths_deg"][0]))
    ref = np.stack([scipy.signal.fftconvolve(clip, h)[: clip.size] for h in rir])
    assert np.abs(row["waveform"] - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("name, n", [("assignment2", 2), ("assignment3", 3)])
def test_assignment_candidates_and_labels(built, corpus, name, n):
    _, sets, _ = built
    captions = _captions(corpus["test"])
    labels_of = dict(zip(corpus["test"]["id"], corpus["test"]["labels"]))
    positions = []
    for row in sets[name]:
        candidates, label, azimuths = row["candidate_captions"], row["label"], row["azimuths_deg"]
        content = [captions[s] for s in row["source_ids"]]
        assert len(candidates) == [1, 2, 6][n - 1] and len(set(candidates)) == len(candidates)
        assert candidates[label] == compose_caption(content, azimuths)
        assert {_strip_directions(c) for c in candidates} == {compose_caption(content)}  # only directions differ
        assert len({doa_class(a) for a in azimuths}) == n  # distinct DoA classes: decidable
        assert len(set(content)) == n and len({tuple(labels_of[s]) for s in row["source_ids"]}) == n
        positions.append(label)
    assert len(set(positions)) > 1  # the true caption's position is randomised


def test_retrieval_captions_are_unique(built, corpus):
    _, sets, messages = built
    ds = sets["retrieval"]
    assert len(set(ds["caption_src"])) == len(ds) and len(set(ds["caption_sp_src"])) == len(ds)
    sources = [s for row in ds["source_ids"] for s in row]
    assert len(sources) == len(set(sources))
    assert not {"t00", "tdup"} <= set(sources)  # two clips with the same caption are never both used
    assert set(ds["n_sources"]) == {1, 2}
    for row in ds:
        assert len(row["source_ids"]) == row["n_sources"] == len(row["azimuths_deg"])
    # 10 distinct captions cannot fill 4 two-source + 4 single rows: fewer rows, said so
    assert len(ds) < 8 and any("retrieval set has" in m for m in messages)


def test_resampling_and_downmix_are_reported(built, bank, corpus):
    _, sets, messages = built
    assert any("resampled to 16000 Hz" in m for m in messages)
    assert any("down-mixed to mono" in m for m in messages)
    assert "vodd" in {s for row in sets["doa_val"]["source_ids"] for s in row}


def test_deterministic_for_a_seed(built, corpus, bank, tmp_path):
    _, sets, _ = built
    again = build_eval_sets(corpus, bank, tmp_path, seed=3, sample_rate=FS, clip_seconds=CLIP_SECONDS, **SIZES)
    for name in EVAL_SET_NAMES:
        assert again[name].to_dict() == sets[name].to_dict(), name
    other = build_eval_sets(corpus, bank, tmp_path / "other", seed=4, sample_rate=FS, clip_seconds=CLIP_SECONDS, **SIZES)
    assert other["assignment2"]["azimuths_deg"] != sets["assignment2"]["azimuths_deg"]


def test_bad_inputs_raise(corpus, bank, tmp_path):
    with pytest.raises(ValueError, match="differs from the RIR bank"):
        build_eval_sets(corpus, bank, tmp_path, sample_rate=48000, clip_seconds=CLIP_SECONDS)
    with pytest.raises(ValueError, match="no 'validation' split"):
        build_eval_sets(datasets.DatasetDict({"test": corpus["test"]}), bank, tmp_path, sample_rate=FS)


def test_validation_split_uses_only_validation_clips_and_rooms(corpus, bank, tmp_path):
    sizes = dict(SIZES, n_assignment2=4, n_assignment3=2, n_retrieval=4)
    sets = build_eval_sets(
        corpus, bank, tmp_path, seed=3, sample_rate=FS, clip_seconds=CLIP_SECONDS, split="validation", **sizes
    )
    val_ids = set(corpus["validation"]["id"])
    for name, ds in sets.items():
        assert set(ds["room_id"]) <= set(bank.rooms("validation")), name
        assert {s for row in ds["source_ids"] for s in row} <= val_ids, name
    assert json.loads((tmp_path / "eval_sets.json").read_text())["split"] == "validation"
    with pytest.raises(ValueError, match="split must be"):
        build_eval_sets(corpus, bank, tmp_path / "x", sample_rate=FS, clip_seconds=CLIP_SECONDS, split="train")
