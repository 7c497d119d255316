"""Evaluation sets from a tiny synthetic corpus and a tiny RIR bank (held-out rooms only), written as
one spatialized dataset with a config per set."""

import logging
from collections import Counter
from itertools import permutations

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.signal

from spatial_clap_hf.data.eval_sets import build_eval_sets
from spatial_clap_hf.data.schema import EVAL_SET_NAMES, SOURCE_FEATURES, spatial_features
from spatial_clap_hf.data.spatialized import AudioClips, read_manifest
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
        sets = build_eval_sets(corpus, bank, out, seed=3, sample_rate=FS, clip_seconds=CLIP_SECONDS,
                               show_progress=False, **SIZES)
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


def _scenes(ds) -> dict[str, list[dict]]:
    scenes: dict[str, list[dict]] = {}
    for row in ds.remove_columns("audio").to_list():
        scenes.setdefault(row["scene_id"], []).append(row)
    return scenes


def test_all_sets_written_with_schema(built):
    out, sets, _ = built
    assert list(sets) == list(EVAL_SET_NAMES)
    for name, ds in sets.items():
        assert ds.features == spatial_features(FS, 2), name
        split = "validation" if name == "doa_val" else "test"
        assert list((out / name / split).glob(f"{split}-*.parquet")), name
    assert len(sets["doa"]) == 10 and len(sets["doa_val"]) == 7
    assert len(sets["assignment2"]) == 8 * 2 and len(sets["assignment3"]) == 6 * 6  # every assignment a row
    assert len(_scenes(sets["assignment2"])) == 8 and len(_scenes(sets["assignment3"])) == 6
    wave = AudioClips(sets["doa"])[0]
    assert wave.shape == (2, int(CLIP_SECONDS * FS)) and wave.dtype == np.float32
    card = (out / "README.md").read_text()
    for name in EVAL_SET_NAMES:
        assert f"config_name: {name}" in card
    assert set(read_manifest(out)["parts"]) == {"doa/test", "doa_val/validation", "assignment2/test",
                                                 "assignment3/test", "retrieval/test"}


def test_only_held_out_rooms_and_clips(built, bank, corpus):
    _, sets, _ = built
    test_ids, val_ids = set(corpus["test"]["id"]), set(corpus["validation"]["id"])
    for name, ds in sets.items():
        rooms = set(bank.rooms("validation" if name == "doa_val" else "test"))
        clips = val_ids if name == "doa_val" else test_ids
        assert set(ds["room_id"]) <= rooms, name
        assert {s for row in ds["source_ids"] for s in row} <= clips, name


def test_doa_rows_match_their_azimuth(built, corpus):
    _, sets, _ = built
    for name, split in (("doa", "test"), ("doa_val", "validation")):
        captions = _captions(corpus[split])
        classes = []
        for row in sets[name].remove_columns("audio"):
            (az,) = row["azimuth_deg"]
            assert row["n_sources"] == 1 and row["doa_class"] == [doa_class(az)]
            assert row["folded_azimuth_deg"][0] == pytest.approx(fold_azimuth(az), abs=1e-4)
            caption = captions[row["source_ids"][0]]
            assert row["caption_src"] == compose_caption([caption])
            assert row["caption"] == compose_caption([caption], [az])
            classes.append(row["doa_class"][0])
        counts = Counter(classes)
        assert set(counts) == set(range(5)) and max(counts.values()) - min(counts.values()) <= 1  # class-balanced


def test_doa_audio_is_the_convolved_clip_to_16_bits(built, corpus, bank):
    _, sets, _ = built
    row = sets["doa"].remove_columns("audio")[0]
    wave = AudioClips(sets["doa"])[0].astype(np.float64)
    index = list(corpus["test"]["id"]).index(row["source_ids"][0])
    audio = corpus["test"][index]["audio"].get_all_samples()
    clip = np.zeros(int(CLIP_SECONDS * FS))
    mono = audio.data.numpy().mean(axis=0)[: clip.size]
    clip[: mono.size] = mono
    rir = bank.get(int(row["room_id"]), float(row["azimuth_deg"][0]))
    ref = row["gain"] * np.stack([scipy.signal.fftconvolve(clip, h)[: clip.size] for h in rir])
    assert np.abs(wave - ref).max() <= 2.0**-16 + 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("name, n", [("assignment2", 2), ("assignment3", 3)])
def test_assignment_scenes_hold_every_assignment(built, corpus, name, n):
    _, sets, _ = built
    captions = _captions(corpus["test"])
    labels_of = dict(zip(corpus["test"]["id"], corpus["test"]["labels"]))
    for rows in _scenes(sets[name]).values():
        assert [tuple(r["assignment"]) for r in rows] == list(permutations(range(n)))
        content = [captions[s] for s in rows[0]["source_ids"]]
        drawn = rows[0]["azimuth_deg"]
        candidates = [r["caption"] for r in rows]
        assert len(set(candidates)) == len(candidates)
        for r in rows:
            assert r["azimuth_deg"] == [drawn[j] for j in r["assignment"]]
            assert r["caption"] == compose_caption(content, r["azimuth_deg"])
        assert {_strip_directions(c) for c in candidates} == {compose_caption(content)}  # only directions differ
        assert len({doa_class(a) for a in drawn}) == n  # distinct DoA classes: decidable
        assert len(set(content)) == n and len({tuple(labels_of[s]) for s in rows[0]["source_ids"]}) == n
        assert len({r["room_id"] for r in rows}) == 1


def test_assignment_rows_differ_by_who_is_where(built):
    _, sets, _ = built
    waves = AudioClips(sets["assignment2"])[:2]  # the two assignments of the first scene
    assert not np.allclose(waves[0], waves[1], atol=1e-3)


def test_retrieval_captions_are_unique(built, corpus):
    _, sets, messages = built
    ds = sets["retrieval"].remove_columns("audio")
    assert len(set(ds["caption_src"])) == len(ds) and len(set(ds["caption"])) == len(ds)
    sources = [s for row in ds["source_ids"] for s in row]
    assert len(sources) == len(set(sources))
    assert not {"t00", "tdup"} <= set(sources)  # two clips with the same caption are never both used
    assert set(ds["n_sources"]) == {1, 2} and all(row["assignment"] == list(range(row["n_sources"])) for row in ds)
    for row in ds:
        assert len(row["source_ids"]) == row["n_sources"] == len(row["azimuth_deg"])
    # 10 distinct captions cannot fill 4 two-source + 4 single rows: fewer rows, said so
    assert len(ds) < 8 and any("retrieval set has" in m for m in messages)


def test_resampling_and_downmix_are_reported(built, bank, corpus):
    _, sets, messages = built
    assert any("resampled to the RIR bank's 16000 Hz" in m for m in messages)
    assert any("down-mixed to mono" in m for m in messages)
    assert "vodd" in {s for row in sets["doa_val"]["source_ids"] for s in row}


def _rows(directory) -> list[dict]:
    return [r for f in sorted(directory.rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_deterministic_for_a_seed(built, corpus, bank, tmp_path):
    out, sets, _ = built
    build_eval_sets(corpus, bank, tmp_path / "again", seed=3, clip_seconds=CLIP_SECONDS, num_proc=2,
                    show_progress=False, **SIZES)
    assert _rows(tmp_path / "again") == _rows(out)  # audio bytes included, whatever the workers
    other = build_eval_sets(corpus, bank, tmp_path / "other", seed=4, clip_seconds=CLIP_SECONDS,
                            show_progress=False, **SIZES)
    assert other["assignment2"]["azimuth_deg"] != sets["assignment2"]["azimuth_deg"]


def test_bad_inputs_raise(corpus, bank, tmp_path):
    with pytest.raises(ValueError, match="differs from the RIR bank"):
        build_eval_sets(corpus, bank, tmp_path, sample_rate=48000, clip_seconds=CLIP_SECONDS)
    with pytest.raises(ValueError, match="no 'validation' split"):
        build_eval_sets(datasets.DatasetDict({"test": corpus["test"]}), bank, tmp_path, sample_rate=FS)
    test_only = RirBank.build(tmp_path / "test-bank", RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=30),
                              splits=["test"], show_progress=False)
    with pytest.raises(ValueError, match=r"RIR bank has no 'validation' split \(it has \['test'\]\)"):
        build_eval_sets(corpus, test_only, tmp_path / "x", clip_seconds=CLIP_SECONDS)


def test_validation_split_uses_only_validation_clips_and_rooms(corpus, bank, tmp_path):
    sizes = dict(SIZES, n_assignment2=4, n_assignment3=2, n_retrieval=4)
    sets = build_eval_sets(
        corpus, bank, tmp_path, seed=3, sample_rate=FS, clip_seconds=CLIP_SECONDS, split="validation",
        show_progress=False, **sizes
    )
    val_ids = set(corpus["validation"]["id"])
    for name, ds in sets.items():
        assert set(ds["room_id"]) <= set(bank.rooms("validation")), name
        assert {s for row in ds["source_ids"] for s in row} <= val_ids, name
    assert {e["params"]["split"] for e in read_manifest(tmp_path)["parts"].values()} == {"validation"}
    with pytest.raises(ValueError, match="split must be"):
        build_eval_sets(corpus, bank, tmp_path / "x", sample_rate=FS, clip_seconds=CLIP_SECONDS, split="train")
