"""`spatial-clap classify` and `spatial-clap embed` on a tiny saved checkpoint and WAV files written here."""

from __future__ import annotations

import json
import logging
import re

import datasets
import numpy as np
import pytest
import scipy.io.wavfile
import torch
import torchaudio.functional as AF
from conftest import make_stereo

from spatial_clap_hf import create_model
from spatial_clap_hf.cli import main
from spatial_clap_hf.data.audio_io import load_audio
from spatial_clap_hf.models.loading import load_model_and_processor
from spatial_clap_hf.inference import load_classifier, where_is
from spatial_clap_hf.spatial.conventions import DEFAULT_PHRASES

SR = 16000
LABELS = [
    "A dog is barking on the left side.",
    "Rain falls on a tin roof in the front-right.",
    "A door slams shut in front.",
]


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> dict[str, str]:
    """Stereo 16 kHz and 22.05 kHz files, a mono file, a corrupt file and a missing path."""
    root = tmp_path_factory.mktemp("wavs")
    clips = make_stereo(2, 0.8, SR, seed=5, delays=[4, -4]).numpy()
    paths = {"left": root / "left.wav", "right_22k": root / "right_22k.wav", "mono": root / "mono.wav"}
    scipy.io.wavfile.write(paths["left"], SR, clips[0].T)
    scipy.io.wavfile.write(paths["right_22k"], 22050, AF.resample(torch.from_numpy(clips[1]), SR, 22050).numpy().T)
    scipy.io.wavfile.write(paths["mono"], SR, clips[0, 0])
    paths["corrupt"] = root / "corrupt.wav"
    paths["corrupt"].write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    paths["missing"] = root / "missing.wav"
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint):
    return load_classifier(tiny_checkpoint, device="cpu")


def _assert_same(got: list[dict], expected: list[dict]) -> None:
    """Same rows (labels or directions) in the same order, with the same scores."""
    assert [{k: v for k, v in g.items() if k != "score"} for g in got] == [
        {k: v for k, v in e.items() if k != "score"} for e in expected
    ]
    assert [g["score"] for g in got] == pytest.approx([e["score"] for e in expected], abs=1e-6)


def _classify(capsys, *argv) -> tuple[int, str, str]:
    code = main(["classify", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_lists_each_file_with_percentages_and_notes_resampling(capsys, wavs, tiny_checkpoint, classifier):
    code, out, err = _classify(capsys, wavs["left"], wavs["right_22k"], "--labels", *LABELS, "--model", tiny_checkpoint)
    assert code == 0, err
    blocks = out.strip().split("\n" + wavs["right_22k"] + "\n")
    assert blocks[0].splitlines()[0] == wavs["left"] and len(blocks) == 2
    for block, path in zip(blocks, (wavs["left"], wavs["right_22k"])):
        rows = [re.match(r"\s+([\d.]+) %  (.+)$", line) for line in block.splitlines() if line.startswith("  ")]
        assert len(rows) == 3 and all(rows)
        percents = [float(r.group(1)) for r in rows]
        assert percents == sorted(percents, reverse=True) and sum(percents) == pytest.approx(100.0, abs=0.05)
        expected = classifier(path, candidate_labels=LABELS)
        assert [r.group(2) for r in rows] == [s["label"] for s in expected]
        assert percents == pytest.approx([100 * s["score"] for s in expected], abs=0.006)
    assert f"'{wavs['right_22k']}' is 22050 Hz audio; resampled to the model's 16000 Hz" in err
    assert wavs["left"] + "'" not in err  # 16 kHz files are not resampled


def test_json_output_and_top_k(capsys, wavs, tiny_checkpoint, classifier):
    code, out, err = _classify(capsys, wavs["left"], "--labels", *LABELS, "--model", tiny_checkpoint, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["file"], r["sample_rate"]) for r in rows] == [(wavs["left"], SR)]
    _assert_same(rows[0]["results"], classifier(wavs["left"], candidate_labels=LABELS))
    argv = [wavs["left"], "--labels", *LABELS, "--model", tiny_checkpoint, "--json", "--top-k", "1"]
    code, out, _ = _classify(capsys, *argv)
    assert code == 0 and json.loads(out)[0]["results"] == [rows[0]["results"][0]]


def test_where_reports_five_directions_left_to_right(capsys, wavs, tiny_checkpoint, classifier):
    code, out, err = _classify(capsys, wavs["left"], "--where", "a dog barking", "--model", tiny_checkpoint, "--json")
    assert code == 0, err
    row = json.loads(out)[0]
    assert row["where"] == "a dog barking"
    assert [r["direction"] for r in row["results"]] == list(DEFAULT_PHRASES.phrases)
    assert [r["azimuth_deg"] for r in row["results"]] == [72.0, 36.0, 0.0, -36.0, -72.0]
    assert sum(r["score"] for r in row["results"]) == pytest.approx(1.0, abs=1e-6)
    _assert_same(row["results"], where_is(classifier, wavs["left"], "a dog barking"))

    argv = [wavs["left"], "--where", "a dog barking", "--model", tiny_checkpoint, "--top-k", "2"]
    code, out, _ = _classify(capsys, *argv)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f'{wavs["left"]}: where is "a dog barking"?' and len(lines) == 3
    best_two = sorted(row["results"], key=lambda r: -r["score"])[:2]
    kept = [r for r in row["results"] if r in best_two]  # left-to-right order is kept
    for line, r in zip(lines[1:], kept):
        assert r["direction"] in line and f"({r['azimuth_deg']:+.0f}°)" in line


def test_bad_files_exit_non_zero_naming_every_file_and_the_fix(capsys, wavs, tiny_checkpoint):
    files = [wavs["left"], wavs["mono"], wavs["corrupt"], wavs["missing"]]
    code, out, err = _classify(capsys, *files, "--labels", *LABELS, "--model", tiny_checkpoint)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len([line for line in lines if line.startswith("classify: error:")]) == 3
    assert any(wavs["mono"] in line and "1 (mono) channel" in line and "mono checkpoint" in line for line in lines)
    assert any(wavs["corrupt"] in line and "re-encode" in line for line in lines)
    assert any(wavs["missing"] in line and "file not found" in line for line in lines)
    assert "Traceback" not in err

    code, _, err = _classify(capsys, wavs["left"], "--labels", "x", "--model", wavs["missing"] + "_model_dir")
    assert code == 1 and "does not exist" in err
    with pytest.raises(SystemExit):  # --labels and --where are exclusive
        main(["classify", wavs["left"], "--labels", "x", "--where", "y", "--model", str(tiny_checkpoint)])


def test_embed_writes_parquet_equal_to_direct_model_embeddings(capsys, caplog, wavs, tiny_checkpoint, tmp_path):
    out = tmp_path / "emb" / "embeddings.parquet"
    texts = ["A dog is barking on the left side.", "Rain falls on a tin roof."]
    argv = ["embed", wavs["left"], wavs["right_22k"], "--model", str(tiny_checkpoint), "--output", str(out)]
    with caplog.at_level(logging.WARNING):
        code = main([*argv, "--text", texts[0], "--text", texts[1], "--batch-size", "1", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2 audio + 2 text embeddings of dimension 32" in captured.out
    assert any("22050 Hz" in r.getMessage() and wavs["right_22k"] in r.getMessage() for r in caplog.records)

    table = datasets.Dataset.from_parquet(str(out))
    assert table.column_names == ["source", "kind", "embedding"]
    assert table["source"][:] == [wavs["left"], wavs["right_22k"], *texts]
    assert table["kind"][:] == ["audio", "audio", "text", "text"]
    emb = np.asarray(table.with_format("numpy")["embedding"])
    assert emb.shape == (4, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    model, processor = load_model_and_processor(tiny_checkpoint, "cpu")
    with torch.no_grad():
        for row, path in enumerate((wavs["left"], wavs["right_22k"])):
            array, rate = load_audio(path)
            inputs = processor(audio=[array], sampling_rate=rate, return_tensors="pt")
            direct = model.get_audio_features(inputs["input_values"], attention_mask=inputs["audio_attention_mask"])
            np.testing.assert_allclose(emb[row], direct.pooler_output[0].numpy(), atol=1e-5)
        tokens = processor(text=texts, return_tensors="pt", padding=True)
        direct_text = model.get_text_features(tokens["input_ids"], attention_mask=tokens["attention_mask"])
        direct_text = direct_text.pooler_output
    np.testing.assert_allclose(emb[2:], direct_text.numpy(), atol=1e-5)


def test_embed_with_a_mono_checkpoint_and_clear_errors(capsys, wavs, tiny_processor, tmp_path):
    torch.manual_seed(0)
    mono_dir = tmp_path / "mono_model"
    create_model("tiny-mono").save_pretrained(mono_dir)
    tiny_processor.save_pretrained(mono_dir)
    out = tmp_path / "mono.parquet"
    argv = ["embed", wavs["mono"], wavs["left"], "--model", str(mono_dir), "--output", str(out), "--device", "cpu"]
    assert main(argv) == 0
    capsys.readouterr()
    emb = np.asarray(datasets.Dataset.from_parquet(str(out)).with_format("numpy")["embedding"])
    # The mono model reads the channel mean: a mono file of the left channel differs from the stereo file.
    assert emb.shape == (2, 32) and not np.allclose(emb[0], emb[1], atol=1e-4)

    code = main(["embed", wavs["corrupt"], "--model", str(mono_dir), "--output", str(tmp_path / "x.parquet")])
    err = capsys.readouterr().err
    assert code == 1 and wavs["corrupt"] in err and "Traceback" not in err
    assert not (tmp_path / "x.parquet").exists()
    assert main(["embed", "--model", str(mono_dir), "--output", str(tmp_path / "y.parquet")]) == 2
    assert "nothing to embed" in capsys.readouterr().err
