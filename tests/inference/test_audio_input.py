"""Audio decoding of the pipeline (checkpoint code: standard library WAV reader, the ffmpeg program otherwise),
checked against torchcodec, the decoder ``datasets`` uses."""

from __future__ import annotations

import shutil
import struct
import subprocess

import numpy as np
import pytest

from spatial_clap_hf.data.audio_io import load_audio
from spatial_clap_hf.inference import AudioDecodeError, decode_audio, read_audio_input

RATE = 22050


def _wav_bytes(stereo: np.ndarray, code: int, bits: int, extensible: bool = False) -> bytes:
    """A WAV file written by hand: ``stereo`` float (channels, samples) in [-1, 1] encoded as ``code``/``bits``."""
    channels = stereo.shape[0]
    frames = stereo.T
    if code == 3:
        data = frames.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        data = np.clip(np.round(frames * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    elif bits == 24:
        ints = np.ascontiguousarray(np.clip(np.round(frames * 2**23), -(2**23), 2**23 - 1).astype("<i4"))
        data = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        scale = 2.0 ** (bits - 1)
        data = np.clip(np.round(frames * scale), -scale, scale - 1).astype("<i2" if bits == 16 else "<i4").tobytes()
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else code, channels, RATE, RATE * block, block, bits)
    if extensible:  # cbSize, valid bits, channel mask, sub-format GUID (its first two bytes: the format code)
        fmt += (
            struct.pack("<HHI", 22, bits, 3) + struct.pack("<H", code) + bytes.fromhex("000000001000800000aa00389b71")
        )
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # an odd-sized chunk, padded: skipped
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.fixture(scope="module")
def stereo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(0.3 * rng.standard_normal((2, 3000)), -0.99, 0.99).astype(np.float32)


@pytest.mark.parametrize(
    "code, bits, extensible",
    [(1, 8, False), (1, 16, False), (1, 24, False), (1, 32, False), (3, 32, False), (3, 64, False), (1, 24, True)],
)
def test_wav_encodings_decode_as_torchcodec_does(tmp_path, stereo, code, bits, extensible):
    path = tmp_path / f"clip_{code}_{bits}.wav"
    path.write_bytes(_wav_bytes(stereo, code, bits, extensible))
    array, rate = decode_audio(path)
    reference, reference_rate = load_audio(path)
    assert rate == reference_rate == RATE and array.dtype == np.float32 and array.shape == (2, 3000)
    np.testing.assert_allclose(array, reference, atol=1e-6, rtol=0)
    assert np.abs(array - stereo).max() <= (2.0 / 2**bits if code == 1 else 1e-7)
    # the same bytes in memory, and as a datasets Audio(decode=False) value
    from_bytes, _ = decode_audio(payload=path.read_bytes())
    np.testing.assert_array_equal(from_bytes, array)
    from_dict, _, source = read_audio_input({"bytes": path.read_bytes(), "path": str(path)})
    np.testing.assert_array_equal(from_dict, array)
    assert source == f"audio file '{path}'"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program (apt-get install ffmpeg)")
def test_other_formats_go_through_ffmpeg_with_every_channel(tmp_path, stereo):
    wav = tmp_path / "clip.wav"
    wav.write_bytes(_wav_bytes(stereo, 1, 16))
    for suffix, codec in ((".flac", "flac"), (".wav", "pcm_mulaw")):  # a mu-law WAV: not PCM, so ffmpeg reads it
        out = tmp_path / f"converted_{codec}{suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", codec, str(out)], check=True)
        array, rate = decode_audio(out)
        reference, reference_rate = load_audio(out)
        assert rate == reference_rate == RATE and array.shape == reference.shape == (2, 3000)
        np.testing.assert_allclose(array, reference, atol=1e-6, rtol=0)


def test_broken_and_missing_files_name_the_file(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(AudioDecodeError, match=r"audio file '.*broken\.wav': it has no fmt chunk"):
        decode_audio(broken)
    empty = tmp_path / "zero.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match=r"zero\.wav.*empty \(0 bytes\)"):
        decode_audio(empty)
    with pytest.raises(AudioDecodeError, match="file not found"):
        decode_audio(tmp_path / "nope.wav")
    with pytest.raises(TypeError, match="Cannot read audio from a list"):
        read_audio_input([0.0, 1.0], sampling_rate=16000)


def test_a_torchcodec_decoder_as_datasets_yields_it_keeps_every_channel(tmp_path, stereo):
    """A datasets ``Audio()`` column yields torchcodec decoders; the pipeline reads them without importing torchcodec."""
    from torchcodec.decoders import AudioDecoder

    path = tmp_path / "clip.wav"
    path.write_bytes(_wav_bytes(stereo, 3, 32))
    array, rate, source = read_audio_input(AudioDecoder(str(path)))
    assert rate == RATE and source in (f"audio file '{path}'", "audio decoder")
    np.testing.assert_array_equal(array, decode_audio(path)[0])
