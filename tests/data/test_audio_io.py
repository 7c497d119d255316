"""Audio decoding: real files written with torchcodec/scipy, decoded back with torchcodec."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.io.wavfile
import torch
from datasets import Audio, Dataset, Features
from torchcodec.encoders import AudioEncoder

from spatial_clap_hf.data.audio_io import AudioDecodeError, decoded_to_array, load_audio, probe_audio

SR = 16000


def _tone(freq_hz: float, seconds: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sig = 0.5 * np.sin(2 * np.pi * freq_hz * t).astype(np.float32)
    return np.stack([sig * (1.0 - 0.5 * c) for c in range(channels)])


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_audio_formats(tmp_path, ext):
    x = _tone(440.0, 0.5, SR)
    path = tmp_path / f"clip.{ext}"
    AudioEncoder(torch.from_numpy(x), sample_rate=SR).to_file(str(path))
    array, sr = load_audio(path)
    assert sr == SR
    assert array.dtype == np.float32 and array.ndim == 2 and array.shape[0] == 1
    if ext in ("wav", "flac"):  # lossless: exact length, tiny quantisation error
        assert array.shape[1] == x.shape[1]
        assert np.max(np.abs(array - x)) < 1e-3
    else:  # lossy codecs: length within one codec frame, same dominant frequency
        assert abs(array.shape[1] - x.shape[1]) < 2048
        spectrum = np.abs(np.fft.rfft(array[0]))
        peak_hz = np.argmax(spectrum) * SR / array.shape[1]
        assert abs(peak_hz - 440.0) < 5.0


def test_load_audio_keeps_channels_scipy_wav(tmp_path):
    x = _tone(300.0, 0.25, SR, channels=2)
    path = tmp_path / "stereo.wav"
    scipy.io.wavfile.write(path, SR, (x.T * 32767).astype(np.int16))
    array, sr = load_audio(path)
    assert (sr, array.shape) == (SR, (2, x.shape[1]))
    np.testing.assert_allclose(array, x, atol=1e-3)


def test_resampling_is_applied_and_logged(tmp_path, caplog):
    x = _tone(440.0, 1.0, 44100)
    path = tmp_path / "hi.wav"
    AudioEncoder(torch.from_numpy(x), sample_rate=44100).to_file(str(path))
    with caplog.at_level(logging.INFO, logger="spatial_clap_hf.data.audio_io"):
        array, sr = load_audio(path, target_sample_rate=SR)
    assert sr == SR
    assert abs(array.shape[1] - SR) <= 32
    assert any("44100" in r.getMessage() and "16000" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="spatial_clap_hf.data.audio_io"):
        _, sr = load_audio(path, target_sample_rate=44100)
    assert sr == 44100 and not caplog.records  # same rate: nothing resampled, nothing logged


def test_missing_file_raises_with_path(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioDecodeError, match="not found") as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.path == str(path)
    with pytest.raises(AudioDecodeError):
        probe_audio(path)


def test_corrupt_file_raises_with_path(tmp_path):
    path = tmp_path / "broken.flac"
    path.write_bytes(b"fLaC" + b"\x00garbage" * 50)
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    with pytest.raises(AudioDecodeError) as info:
        probe_audio(path)
    assert str(path) in str(info.value)
    # the pipeline's decoding error is the common base: one except clause catches a corpus file's too
    from spatial_clap_hf.inference import AudioDecodeError as PipelineAudioDecodeError

    assert isinstance(info.value, PipelineAudioDecodeError) and info.value.reason and info.value.source


def test_probe_audio_reports_rate_and_channels(tmp_path):
    path = tmp_path / "s.wav"
    AudioEncoder(torch.from_numpy(_tone(200.0, 0.2, 22050, channels=2)), sample_rate=22050).to_file(str(path))
    assert probe_audio(path) == (22050, 2)


def test_decoded_to_array_accepts_every_audio_column_value(tmp_path):
    x = _tone(500.0, 0.3, SR, channels=2)
    ds = Dataset.from_dict(
        {"audio": [{"array": x, "sampling_rate": SR}]},
        features=Features({"audio": Audio()}),
    )
    decoder_value = ds[0]["audio"]  # a torchcodec AudioDecoder in datasets 5
    array, sr = decoded_to_array(decoder_value)
    assert (sr, array.shape) == (SR, (2, x.shape[1]))  # channels kept, not mono-averaged
    np.testing.assert_allclose(array, x, atol=1e-3)

    raw = ds.cast_column("audio", Audio(decode=False))[0]["audio"]  # {"bytes", "path"}
    array_raw, sr_raw = decoded_to_array(raw)
    np.testing.assert_array_equal(array_raw, array)
    assert sr_raw == SR

    for value in ({"array": x[0], "sampling_rate": SR}, (x[0], SR), (torch.from_numpy(x[0]), SR)):
        a, s = decoded_to_array(value)
        assert a.shape == (1, x.shape[1]) and a.dtype == np.float32 and s == SR

    with pytest.raises(ValueError, match="sampling_rate"):
        decoded_to_array({"array": x})
    with pytest.raises(ValueError, match="transpose"):
        decoded_to_array((x.T, SR))
    with pytest.raises(TypeError, match="AudioDecoder"):
        decoded_to_array([1.0, 2.0])
    with pytest.raises(AudioDecodeError):
        decoded_to_array({"bytes": b"not audio at all", "path": "x.wav"})
