"""Spatialized datasets: scenes rendered once into Parquet shards that load without this package."""

import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from itertools import permutations
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.signal
import torch

from spatial_clap_hf.data.dataset_card import render_dataset_card
from spatial_clap_hf.data.schema import SOURCE_FEATURES, spatial_features
from spatial_clap_hf.data.spatialized import (
    AudioClips,
    encode_audio,
    load_spatialized,
    quantize,
    read_manifest,
    spatialize,
)
from spatial_clap_hf.spatial import compose_caption, doa_class, fold_azimuth
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig, RirKey
from spatial_clap_hf.spatial.spatializer import Spatializer, mix

FS = 16000
CLIP_SECONDS = 0.25
KINDS = ["tone", "noise", "chirp", "clicks", "hum", "sweep"]


def _clip(i: int, n: int, rng, rate: int = FS) -> np.ndarray:
    t = np.arange(n) / rate
    f = 180.0 + 70.0 * i
    kind = KINDS[i % len(KINDS)]
    if kind == "noise":
        x = rng.standard_normal(n)
    elif kind == "chirp":
        x = scipy.signal.chirp(t, f, t[-1], 3 * f)
    elif kind == "clicks":
        x = (np.arange(n) % (150 + 10 * i) == 0).astype(float)
    else:
        x = np.sin(2 * np.pi * f * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * x).astype(np.float32)


def _split(prefix: str, count: int, seed: int, rate: int = FS) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rows = {"id": [], "audio": [], "captions": [], "labels": []}
    for i in range(count):
        n = int(rate * (0.2 + 0.01 * i))  # shorter and longer than the clips
        rows["id"].append(f"{prefix}{i:02d}")
        rows["audio"].append({"array": _clip(i, n, rng, rate), "sampling_rate": rate})
        rows["captions"].append([f"A {KINDS[i % len(KINDS)]} sound number {i}", f"Sound {i} again"])
        rows["labels"].append([KINDS[i % len(KINDS)]])
    return datasets.Dataset.from_dict(rows, features=SOURCE_FEATURES)


def _corpus() -> datasets.DatasetDict:
    return datasets.DatasetDict({"train": _split("a", 12, 0), "validation": _split("v", 6, 1), "test": _split("t", 8, 2)})


@pytest.fixture(scope="module")
def corpus():
    return _corpus()


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bank")
    RirBank.build(directory, RirBankConfig(max_rooms_per_split=2, azimuth_step_deg=30), show_progress=False)
    return directory


@pytest.fixture(scope="module")
def bank(bank_dir):
    return RirBank.load(bank_dir)


TRAIN = dict(split="train", num_sources=[1, 2, 3], scl=True, pairings=2, clip_seconds=CLIP_SECONDS, rows_per_shard=16)


@pytest.fixture(scope="module")
def built(corpus, bank, tmp_path_factory):
    out = tmp_path_factory.mktemp("spatialized") / "train-set"
    info = spatialize(corpus, bank, out, show_progress=False, **TRAIN)
    return out, info


def _table(directory: Path, data_dir: str = "data", split: str = "train") -> list[dict]:
    files = sorted((directory / data_dir / split).glob(f"{split}-*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def _dry(corpus, split: str, clip_id: str) -> np.ndarray:
    """The corpus clip decoded independently: mono, zero-padded or cut to the clip length."""
    index = list(corpus[split]["id"]).index(clip_id)
    samples = corpus[split][index]["audio"].get_all_samples()
    mono = samples.data.numpy().mean(axis=0)
    out = np.zeros(int(round(CLIP_SECONDS * FS)), dtype=np.float32)
    out[: min(out.size, mono.size)] = mono[: out.size]
    return out


def test_quantize_keeps_the_waveform_to_half_a_step_and_scales_only_what_would_clip():
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal((2, 1000))).astype(np.float32)
    for bits in (16, 24):
        levels, gain = quantize(wave, bits)
        assert gain == 1.0 and np.abs(levels - wave).max() <= 2.0**-bits + 1e-9
        assert np.allclose(levels * 2 ** (bits - 1), np.rint(levels * 2 ** (bits - 1)))
    loud, gain = quantize(20.0 * wave, 16)
    assert gain == pytest.approx((32767 / 32768) / np.abs(20.0 * wave).max())
    assert np.abs(loud).max() <= 32767 / 32768 and np.abs(loud - gain * 20.0 * wave).max() <= 2.0**-16 + 1e-9
    flac, _ = encode_audio(wave, FS, 16)
    assert flac[:4] == b"fLaC" and len(flac) < wave.size * 2  # FLAC, smaller than raw 16-bit PCM
    with pytest.raises(ValueError, match="bit_depth"):
        quantize(wave, 8)


def test_rows_hold_every_scene_of_every_draw_with_its_assignments(built, bank, corpus):
    out, info = built
    ds = load_spatialized(out, split="train")
    assert ds.features == spatial_features(FS, 2)
    rows = ds.remove_columns("audio").to_list()
    assert len(rows) == info.rows
    scenes: dict[str, list[dict]] = {}
    for row in rows:
        scenes.setdefault(row["scene_id"], []).append(row)
    assert len(scenes) == info.scenes
    usable = set(corpus["train"]["id"])
    for draw in (0, 1):
        drawn = [s[0] for s in scenes.values() if s[0]["pairing"] == draw]
        ids = [i for row in drawn for i in row["source_ids"]]
        # a draw uses each clip once: 3 triples, 2 pairs and the 5 others alone (a clip that fits no
        # mixture of different content waits for the next draw)
        assert len(ids) == len(set(ids)) >= len(usable) - 2
        counts = Counter(row["n_sources"] for row in drawn)
        assert counts[1] == 5 and counts[2] + counts[3] >= 2
    train_rooms = set(bank.rooms("train"))
    for scene in scenes.values():
        n = scene[0]["n_sources"]
        assert [tuple(r["assignment"]) for r in scene] == list(permutations(range(n)))  # SCL: all n!, identity first
        drawn = scene[0]["azimuth_deg"]
        assert len({doa_class(a) for a in drawn}) == n  # distinct DoA classes
        assert len({tuple(x) for x in scene[0]["labels"]}) == n  # sources of different content
        for row in scene:
            assert row["azimuth_deg"] == [drawn[j] for j in row["assignment"]]
            assert row["caption"] == compose_caption(row["source_captions"], row["azimuth_deg"])
            assert row["caption_src"] == compose_caption(row["source_captions"])
            assert row["folded_azimuth_deg"] == pytest.approx([fold_azimuth(a) for a in row["azimuth_deg"]], abs=1e-4)
            assert row["doa_class"] == [doa_class(a) for a in row["azimuth_deg"]]
            room = bank.room(row["room_id"])
            assert row["room_id"] in train_rooms and row["room_dim"] == pytest.approx(room.dims_m)
            assert row["rt60"] == pytest.approx(room.rt60(), rel=1e-5) and row["absorption"] == pytest.approx(room.absorption)
        assert len({r["caption"] for r in scene}) == len(scene)
    # The draws differ: clips are grouped with others and placed elsewhere.
    by_draw = [{tuple(s[0]["source_ids"]): (s[0]["room_id"], s[0]["azimuth_deg"]) for s in scenes.values()
                if s[0]["pairing"] == draw} for draw in (0, 1)]
    assert by_draw[0] != by_draw[1] and set(by_draw[0]) != set(by_draw[1])
    assert set(info.room_ids) <= train_rooms and info.shards >= math.ceil(info.rows / 16)


def test_a_row_read_without_the_package_is_the_spatializer_output(built, bank, corpus, tmp_path):
    out, _ = built
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        from datasets import load_dataset
        ds = load_dataset("parquet", data_files={str(out / 'data' / 'train' / '*.parquet')!r}, split="train", streaming=True)
        rows = []
        for row in ds:
            samples = row["audio"].get_all_samples()
            rows.append({{"audio": samples.data.numpy().tolist(), "rate": samples.sample_rate,
                          **{{k: row[k] for k in ("source_ids", "azimuth_deg", "room_id", "gain", "n_sources")}}}})
        assert not any(m.startswith("spatial_clap_hf") for m in sys.modules), "the reader imported the package"
        json.dump(rows, open({str(tmp_path / 'rows.json')!r}, "w"))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # the reader needs datasets only
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == len(load_spatialized(out, split="train"))
    spatializer = Spatializer(bank, "train")
    checked = Counter()
    for row in rows:
        audio = np.asarray(row["audio"], dtype=np.float64)
        assert row["rate"] == FS and audio.shape == (2, int(CLIP_SECONDS * FS))
        dry = [_dry(corpus, "train", i) for i in row["source_ids"]]
        keys = [RirKey(row["room_id"], az) for az in row["azimuth_deg"]]
        if row["n_sources"] == 1:
            ref = spatializer.spatialize(torch.from_numpy(dry[0])[None], keys)[0].numpy()
        else:
            ref = mix(torch.from_numpy(np.stack(dry))[None], spatializer.rirs(keys)[None])[0].numpy()
        ref = row["gain"] * ref.astype(np.float64)
        assert np.abs(audio - ref).max() <= 2.0**-16 + 1e-5 * np.abs(ref).max(), row["source_ids"]
        # a scipy reference for the mixtures, independent of the package's convolution
        direct = sum(np.stack([scipy.signal.fftconvolve(x, h)[: x.size] for h in bank.get(*k)]) for x, k in zip(dry, keys))
        assert np.abs(audio - row["gain"] * direct / len(dry)).max() <= 2.0**-16 + 1e-4 * np.abs(ref).max()
        checked[row["n_sources"]] += 1
    assert set(checked) == {1, 2, 3}


def test_deterministic_and_the_same_with_two_workers(built, corpus, bank, tmp_path):
    out, info = built
    again = spatialize(corpus, bank, tmp_path / "again", show_progress=False, num_proc=2, **TRAIN)
    assert (again.rows, again.scenes, again.shards) == (info.rows, info.scenes, info.shards)
    assert _table(tmp_path / "again") == _table(out)  # audio bytes included
    other = spatialize(corpus, bank, tmp_path / "other", show_progress=False, **{**TRAIN, "seed": 1})
    assert other.rows > 0 and _table(tmp_path / "other") != _table(out)  # another seed, other scenes


def test_the_test_split_has_one_fixed_draw_and_a_cap(corpus, bank, tmp_path):
    common = dict(split="test", num_sources=[1, 2], clip_seconds=CLIP_SECONDS, show_progress=False)
    info = spatialize(corpus, bank, tmp_path / "test", max_scenes=5, **common)
    rows = load_spatialized(tmp_path / "test", split="test")
    assert info.scenes == len(rows) == 5 and set(rows["pairing"]) == {0}
    assert Counter(rows["n_sources"]) == {1: 3, 2: 2}  # sizes interleaved, then capped
    assert set(rows["room_id"]) <= set(bank.rooms("test"))
    with pytest.raises(ValueError, match="one fixed pairing"):
        spatialize(corpus, bank, tmp_path / "x", pairings=2, **common)
    assert not (tmp_path / "x").exists()


def test_card_names_the_files_and_load_dataset_reads_the_folder(built, tmp_path):
    out, info = built
    card = (out / "README.md").read_text()
    assert "path: data/train/train-*" in card and "config_name: default" in card
    for text in ("+90° = left", "channel 0 is the **left** microphone", "asin(sin θ)", '"in the front-right"',
                 "RT60 (Sabine)", "streaming=True", "24-bit", "seki2025spatialclap", f"| default | train | {info.rows}"):
        assert text in card, text
    assert "license: unknown" in card  # a corpus of unknown origin
    assert 'load_dataset("parquet", data_files="data/train/*.parquet", split="train", streaming=True)' in card
    # the card's YAML configs, no package code (a cache of its own: datasets caches a folder by its name)
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path))
    assert len(ds) == info.rows and ds.features["audio"] == datasets.Audio(sampling_rate=FS, num_channels=2)
    manifest = read_manifest(out)
    assert manifest["parts"]["default/train"]["info"]["rows"] == info.rows
    assert not (out / ".partial").exists()
    # the card pushed with the data names its Hub id
    pushed = str(render_dataset_card(out, repo_id="you/spatial-set"))
    assert 'load_dataset("you/spatial-set", split="train", streaming=True)' in pushed
    assert "path: data/train/train-*" in pushed


def test_existing_parts_are_reused_and_other_parameters_refused(built, corpus, bank, tmp_path, caplog):
    out, info = built
    before = sorted(p.stat().st_mtime_ns for p in (out / "data" / "train").iterdir())
    with caplog.at_level(logging.INFO, logger="spatial_clap_hf"):
        assert spatialize(corpus, bank, out, show_progress=False, **TRAIN).rows == info.rows
    assert "Reusing the complete default/train part" in caplog.text
    assert sorted(p.stat().st_mtime_ns for p in (out / "data" / "train").iterdir()) == before
    with pytest.raises(ValueError, match=r"other parameters.*'seed': \(0, 3\)"):
        spatialize(corpus, bank, out, show_progress=False, **{**TRAIN, "seed": 3})
    with pytest.raises(ValueError, match="other settings"):
        spatialize(corpus, bank, out, show_progress=False, **{**TRAIN, "clip_seconds": 0.2})
    other_bank = RirBank.build(tmp_path / "bank45", RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=45),
                               splits=["train"], show_progress=False)
    with pytest.raises(ValueError, match="other settings.*rir_bank"):
        spatialize(corpus, other_bank, out, show_progress=False, **TRAIN)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="something other than a spatialized dataset"):
        spatialize(corpus, bank, tmp_path / "busy", show_progress=False, **TRAIN)
    with pytest.raises(ValueError, match=r"no 'validation' split \(it has \['train'\]\)"):
        spatialize(corpus, other_bank, tmp_path / "new", split="validation", clip_seconds=CLIP_SECONDS)
    assert not (tmp_path / "new").exists()
    # another split joins the same folder and the card lists both
    spatialize(corpus, bank, out, split="validation", num_sources=[1], clip_seconds=CLIP_SECONDS, show_progress=False)
    card = (out / "README.md").read_text()
    assert "path: data/validation/validation-*" in card and "| default | validation | 6 |" in card


def test_bad_clips_are_skipped_and_other_rates_resampled(bank, tmp_path, caplog):
    good = _split("g", 6, 3, rate=8000)
    bad = datasets.Dataset.from_dict(
        {
            "id": ["missing", "garbage"],
            "audio": [{"path": str(tmp_path / "nowhere.wav"), "bytes": None}, {"path": None, "bytes": b"RIFF not audio"}],
            "captions": [["A missing file"], ["A broken file"]],
            "labels": [["x"], ["y"]],
        },
        features=SOURCE_FEATURES,
    )
    corpus = datasets.DatasetDict({"train": datasets.concatenate_datasets([good, bad])})
    with caplog.at_level(logging.WARNING, logger="spatial_clap_hf"):
        info = spatialize(corpus, bank, tmp_path / "out", split="train", num_sources=[1, 2],
                          clip_seconds=CLIP_SECONDS, show_progress=False)
    assert info.skipped_clips == 2
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert skipped["total"] == 2
    assert {c["id"]: c["reason"] for c in skipped["parts"]["default/train"]["clips"]}.keys() == {"missing", "garbage"}
    ids = {i for row in load_spatialized(tmp_path / "out", split="train")["source_ids"] for i in row}
    assert ids == set(good["id"])
    assert "are at 8000 Hz; they are resampled to the RIR bank's 16000 Hz" in caplog.text
    assert "2 clip(s) of the corpus train split are missing or do not decode" in caplog.text
    assert "2 source clip(s) were missing or did not decode" in (tmp_path / "out" / "README.md").read_text()


def test_a_killed_run_resumes_from_its_finished_shards(corpus, bank, bank_dir, tmp_path, caplog):
    """A real run killed mid-way (SIGKILL) leaves no visible part; the next run keeps its shards."""
    corpus_dir, out = tmp_path / "corpus", tmp_path / "out"
    big = datasets.DatasetDict({"train": _split("k", 80, 7), "validation": corpus["validation"], "test": corpus["test"]})
    big.save_to_disk(str(corpus_dir))
    args = ["spatialize", "--corpus", str(corpus_dir), "--rirs", str(bank_dir), "--split", "train",
            "--num-sources", "3", "--scl", "--clip-seconds", "0.5", "--rows-per-shard", "6", "--output-dir", str(out)]
    code = "import sys; from spatial_clap_hf.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out / ".partial" / "default" / "train"
    deadline = time.time() + 240
    try:
        while len(list(partial.glob(".stats-*.json"))) < 3:
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.time() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "data").exists() and read_manifest(out)["parts"] == {}  # nothing half-built is visible
    with pytest.raises(ValueError, match="no complete 'default' part"):
        load_spatialized(out, split="train")
    kept = {p.name: p.stat().st_mtime_ns for p in partial.glob("train-*.parquet")}
    assert len(kept) >= 3
    from spatial_clap_hf.data.audiocaps import load_corpus

    with caplog.at_level(logging.INFO, logger="spatial_clap_hf"):
        info = spatialize(load_corpus(corpus_dir), bank, out, split="train", num_sources=[3], scl=True,
                          clip_seconds=0.5, rows_per_shard=6, corpus_name=str(corpus_dir), show_progress=False)
    assert f"resuming, {len(kept)} of {info.shards} shard(s) already written" in caplog.text
    final = out / "data" / "train"
    assert {name: (final / name).stat().st_mtime_ns for name in kept} == kept  # finished shards kept as they were
    fresh = spatialize(load_corpus(corpus_dir), bank, tmp_path / "fresh", split="train", num_sources=[3], scl=True,
                       clip_seconds=0.5, rows_per_shard=6, corpus_name=str(corpus_dir), show_progress=False)
    assert fresh.rows == info.rows and _table(tmp_path / "fresh") == _table(out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rendering_on_a_gpu_gives_the_rows_of_the_cpu(corpus, bank, tmp_path):
    common = dict(split="test", num_sources=[1, 2], clip_seconds=CLIP_SECONDS, show_progress=False)
    spatialize(corpus, bank, tmp_path / "cpu", **common)
    spatialize(corpus, bank, tmp_path / "gpu", device="cuda", **common)
    cpu, gpu = load_spatialized(tmp_path / "cpu", split="test"), load_spatialized(tmp_path / "gpu", split="test")
    assert cpu.remove_columns(["audio", "gain"]).to_list() == gpu.remove_columns(["audio", "gain"]).to_list()
    for a, b in zip(AudioClips(cpu)[:], AudioClips(gpu)[:]):  # FFTs differ in rounding: a level at most
        assert np.abs(a - b).max() <= 2.0**-15 + 1e-6


def test_audio_clips_restore_the_level_of_rows_scaled_against_clipping(tmp_path):
    """A row stored at gain 0.5 is read back at its rendered level; plain datasets give the stored one."""
    import datasets

    from spatial_clap_hf.data.spatialized import AudioClips, encode_audio

    loud = np.stack([np.linspace(-1.6, 1.6, 1600), np.linspace(1.2, -1.2, 1600)]).astype(np.float32)
    quiet = 0.25 * loud
    rows = {"audio": [], "gain": []}
    for wave in (loud, quiet):
        flac, gain = encode_audio(wave, 16000, 16)
        rows["audio"].append({"bytes": flac, "path": None})
        rows["gain"].append(gain)
    assert rows["gain"][0] < 1.0 and rows["gain"][1] == 1.0
    features = datasets.Features({"audio": datasets.Audio(sampling_rate=16000, num_channels=2),
                                  "gain": datasets.Value("float64")})
    dataset = datasets.Dataset.from_dict(rows, features=features)
    clips = AudioClips(dataset)
    for got, wave in zip(clips[0:2], (loud, quiet)):
        np.testing.assert_allclose(got, wave, atol=2.0**-15 / rows["gain"][0])
    stored = dataset.with_format("numpy")[0]["audio"]["array"]
    assert np.abs(stored).max() <= 1.0  # what a reader without the package sees: the scaled row
