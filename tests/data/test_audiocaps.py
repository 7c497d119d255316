"""AudioCaps builder on a small fabricated AudioCaps/AudioSet folder (real files, real datasets)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Audio
from torchcodec.encoders import AudioEncoder

from spatial_clap_hf.cli import main as cli_main
from spatial_clap_hf.data.audio_io import decoded_to_array
from spatial_clap_hf.data.audiocaps import (
    AudioCapsBuilder,
    build_audiocaps,
    find_audio_files,
    load_corpus,
    load_label_names,
    read_audioset_labels,
)
from spatial_clap_hf.data.schema import SOURCE_FEATURES

# YouTube ids: 11 characters of [A-Za-z0-9_-]; some contain '_' or start with 'Y'.
TR1, TR2, TR3 = "--PJHxphWEs", "ab_cd-EF012", "missing0001"
VA1, VA2 = "Yx9-abcdEFg", "corrupt0001"
TE1, TE2 = "te1_aaaaaaa", "te2bbbbbbbb"


def _write_audio(path: Path, seconds: float, sample_rate: int, freq: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]
    AudioEncoder(torch.from_numpy(x), sample_rate=sample_rate).to_file(str(path))


def _write_csv(path: Path, rows: list[tuple[str, str]], start_id: int) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        for i, (youtube_id, caption) in enumerate(rows):
            writer.writerow([start_id + i, youtube_id, 30, caption])


def _five(youtube_id: str) -> list[tuple[str, str]]:
    return [(youtube_id, f"Caption {k} of {youtube_id}, with a comma") for k in range(5)]


@pytest.fixture(scope="module")
def audiocaps_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("AudioCaps")
    _write_csv(root / "train.csv", [(TR1, "A dog barks"), (TR2, "Rain falls"), (TR3, "Lost clip"), (TR1, "A dog barks twice")], 1)
    _write_csv(root / "val.csv", _five(VA1) + _five(VA2), 100)
    (root / "dataset").mkdir()
    _write_csv(root / "dataset" / "test.csv", _five(TE1) + _five(TE2), 200)  # official repo layout
    audio = root / "audio"
    _write_audio(audio / "train" / f"Y{TR1}.wav", 1.0, 16000)
    _write_audio(audio / "train" / f"{TR2}_30.000.flac", 0.5, 32000)
    _write_audio(audio / "val" / f"{VA1}.wav", 0.75, 16000)
    (audio / "val" / f"{VA2}.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    _write_audio(audio / "test" / "nested" / f"Y{TE1}_0_10.flac", 0.25, 16000)
    _write_audio(audio / "test" / f"{TE2}.ogg", 0.5, 16000)
    _write_audio(audio / "unused" / "notinanycsv.wav", 0.1, 16000)
    return root


@pytest.fixture(scope="module")
def audioset_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("AudioSet")
    (root / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n'
        '2,/m/0bt9lr,"Dog"\n3,/m/06mb1,"Rain"\n'
    )
    header = "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=3\n# YTID, start_seconds, end_seconds, positive_labels\n"
    (root / "balanced_train_segments.csv").write_text(
        header + f'{TR1}, 30.000, 40.000, "/m/0bt9lr,/m/05zppz"\n{TR2}, 30.000, 40.000, "/m/06mb1"\n'
        'zzzzzzzzzzz, 0.000, 10.000, "/m/09x0r"\n'
    )
    (root / "eval_segments.csv").write_text(header + f'{VA1}, 0.000, 10.000, "/m/09x0r,/m/unknown"\n{TE1}, 0.000, 10.000, "/m/06mb1"\n')
    return root


@pytest.fixture(scope="module")
def built(audiocaps_root, audioset_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "audiocaps"
    return out, build_audiocaps(audiocaps_root, out, audioset_dir=audioset_root)


def test_rows_captions_and_labels(built):
    out, corpus = built
    assert set(corpus) == {"train", "validation", "test"}
    assert corpus["train"].features == SOURCE_FEATURES
    assert corpus["train"]["id"] == [TR1, TR2]
    assert corpus["validation"]["id"] == [VA1]
    assert corpus["test"]["id"] == [TE1, TE2]
    train = {row["id"]: row for row in corpus["train"]}
    assert train[TR1]["captions"] == ["A dog barks", "A dog barks twice"]  # repeated train clip grouped
    assert train[TR1]["labels"] == ["Dog", "Male speech, man speaking"]
    assert train[TR2]["labels"] == ["Rain"]
    assert corpus["validation"][0]["captions"] == [c for _, c in _five(VA1)]
    assert corpus["validation"][0]["labels"] == ["Speech"]  # unknown mid ignored
    assert [r["labels"] for r in corpus["test"]] == [["Rain"], []]  # no segment row → []
    assert load_label_names(out) == ["Speech", "Male speech, man speaking", "Dog", "Rain"]


def test_audio_decodes_to_the_right_length(built):
    _, corpus = built
    expected = {TR1: (16000, 16000), TR2: (16000, 32000), VA1: (12000, 16000), TE1: (4000, 16000)}
    for split in corpus.values():
        for row in split:
            array, sr = decoded_to_array(row["audio"])
            assert array.shape[0] == 1 and array.dtype == np.float32
            if row["id"] in expected:
                assert (array.shape[1], sr) == expected[row["id"]]
            else:  # lossy ogg: length within a codec frame
                assert sr == 16000 and abs(array.shape[1] - 8000) < 1024
    raw = corpus["train"].cast_column("audio", Audio(decode=False))[0]["audio"]
    assert raw["bytes"] is not None and raw["path"] == f"Y{TR1}.wav"  # save_to_disk embeds the file as is
    array, sr = decoded_to_array(raw)
    assert (array.shape, sr) == ((1, 16000), 16000)


def test_skip_report_lists_missing_and_corrupt(built, audiocaps_root):
    out, _ = built
    report = json.loads((out / "skipped.json").read_text())
    assert report["total"] == 2
    assert report["per_split"] == {"train": 1, "validation": 1, "test": 0}
    missing, corrupt = report["skipped"]
    assert missing == {"split": "train", "youtube_id": TR3, "reason": "no audio file found", "path": None}
    assert (corrupt["split"], corrupt["youtube_id"]) == ("validation", VA2)
    assert corrupt["reason"].startswith("decode failed: ")
    assert Path(corrupt["path"]) == (audiocaps_root / "audio" / "val" / f"{VA2}.wav").resolve()
    assert load_corpus(out)["train"].num_rows == 2  # reload from disk


def test_find_audio_files_name_patterns(audiocaps_root):
    files = find_audio_files(audiocaps_root / "audio", {TR1, TR2, TR3, VA1, TE1, TE2, "ab"})
    assert set(files) == {TR1, TR2, VA1, TE1, TE2}
    assert files[TR1].name == f"Y{TR1}.wav"
    assert files[TR2].name == f"{TR2}_30.000.flac"  # id containing '_' plus a start suffix
    assert files[VA1].name == f"{VA1}.wav"  # id starting with 'Y'
    assert files[TE1].name == f"Y{TE1}_0_10.flac"
    assert TR3 not in files and "ab" not in files


def test_audioset_labels_reader(audioset_root):
    names, labels = read_audioset_labels(audioset_root, {TR1, VA1})
    assert names == ["Speech", "Male speech, man speaking", "Dog", "Rain"]
    assert labels == {TR1: ["Dog", "Male speech, man speaking"], VA1: ["Speech"]}


def test_builder_directly_with_two_processes(audiocaps_root, tmp_path):
    builder = AudioCapsBuilder(data_dir=str(audiocaps_root), cache_dir=str(tmp_path / "cache"), shard_size=1)
    builder.download_and_prepare(num_proc=2)
    corpus = builder.as_dataset()
    assert corpus["train"]["id"] == [TR1, TR2] and corpus["test"]["id"] == [TE1, TE2]
    assert all(labels == [] for labels in corpus["train"]["labels"])  # no AudioSet folder
    assert [(s["split"], s["youtube_id"]) for s in builder.skipped_clips()] == [("train", TR3), ("validation", VA2)]


def test_cli_without_audioset(audiocaps_root, tmp_path):
    out = tmp_path / "cli_out"
    assert cli_main(["build-audiocaps", "--audiocaps-dir", str(audiocaps_root), "--output-dir", str(out)]) == 0
    corpus = load_corpus(out)
    assert corpus["validation"]["id"] == [VA1] and corpus["validation"][0]["labels"] == []
    assert load_label_names(out) == []
    assert json.loads((out / "skipped.json").read_text())["total"] == 2


def test_split_without_usable_audio_is_empty_not_a_crash(tmp_path):
    root = tmp_path / "ac"
    root.mkdir()
    _write_csv(root / "train.csv", [(TR1, "A dog barks")], 1)
    _write_csv(root / "val.csv", [(VA1, "Nothing downloaded")], 2)
    _write_csv(root / "test.csv", [], 3)
    _write_audio(root / "audio" / f"{TR1}.wav", 0.1, 16000)
    corpus = build_audiocaps(root, tmp_path / "out")
    assert {split: len(ds) for split, ds in corpus.items()} == {"train": 1, "validation": 0, "test": 0}
    assert corpus["validation"].features == SOURCE_FEATURES
    report = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert [(s["split"], s["youtube_id"], s["reason"]) for s in report["skipped"]] == [
        ("validation", VA1, "no audio file found")
    ]


def test_clear_errors(tmp_path, audiocaps_root):
    with pytest.raises(FileNotFoundError, match="audio"):
        build_audiocaps(tmp_path, tmp_path / "out")  # no audio/ folder
    (tmp_path / "audio").mkdir()
    with pytest.raises(FileNotFoundError, match="train.csv"):
        build_audiocaps(tmp_path, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="class_labels_indices.csv"):
        build_audiocaps(audiocaps_root, tmp_path / "out2", audioset_dir=tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError, match="busy"):
        build_audiocaps(audiocaps_root, busy)
    with pytest.raises(FileNotFoundError, match="make-corpus"):
        load_corpus(tmp_path / "nothing")
