import numpy as np
import pytest
import torch
import torchaudio
from transformers import ClapFeatureExtractor

from conftest import make_stereo
from spatial_clap_hf import SeldNetConfig, get_config
from spatial_clap_hf.models.spatial_clap.frontend_spatial_clap import ClapLogMel, SincResampler, SourceFrontend, SpatialStftFrontend


def _test_signal(seconds: float, sample_rate: int = 48000) -> np.ndarray:
    """Tone + noise with a near-silent start and an exactly silent stretch (exercises the dB floor)."""
    rng = np.random.default_rng(1)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)
    x[: sample_rate // 4] *= 1e-3
    x[sample_rate // 2 : sample_rate // 2 + 4800] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("truncation, mel_scale", [("rand_trunc", "slaney"), ("fusion", "htk")])
def test_log_mel_matches_clap_feature_extractor(truncation, mel_scale):
    x = _test_signal(3.0)
    reference = ClapFeatureExtractor(frequency_min=50, frequency_max=14000, truncation=truncation, max_length_s=3)
    expected = reference(x, sampling_rate=48000, return_tensors="np")["input_features"][0, 0]
    ours = ClapLogMel(sample_rate=48000, num_mel_bins=64, fmin=50, fmax=14000, mel_scale=mel_scale)
    got = ours(torch.from_numpy(x)[None])[0].numpy()
    assert got.shape == expected.shape == (301, 64)
    assert np.abs(got - expected).max() <= 1e-3


def test_resampler_matches_torchaudio():
    waveforms = torch.randn(2, 3, 8000)
    ours = SincResampler(16000, 48000)(waveforms)
    expected = torchaudio.functional.resample(waveforms, 16000, 48000)
    assert ours.shape == expected.shape == (2, 3, 24000)
    assert torch.allclose(ours, expected, atol=1e-5)
    down = SincResampler(48000, 16000)(waveforms)
    assert torch.allclose(down, torchaudio.functional.resample(waveforms, 48000, 16000), atol=1e-5)


@pytest.mark.parametrize("rates", [(16000, 48000), (48000, 16000), (44100, 16000), (22050, 16000), (8000, 16000)])
@pytest.mark.parametrize("samples", [7777, 300, 1])
def test_resampler_matches_torchaudio_at_any_rates_and_lengths(rates, samples):
    """The banded matrix product covers every output frame, whatever the block and the length."""
    waveforms = torch.randn(3, samples, generator=torch.Generator().manual_seed(samples))
    resampler = SincResampler(*rates)
    expected = torchaudio.functional.resample(waveforms, *rates)
    ours = resampler(waveforms)
    assert ours.shape == expected.shape and ours.shape[-1] == resampler.output_length(samples)
    # float32 sums over the kernel's taps (15 at 16 -> 48 kHz, 459 at 44.1 -> 16 kHz) round differently
    assert torch.allclose(ours, expected, atol=1e-5 if resampler.kernel.shape[-1] < 100 else 1e-4)


@pytest.mark.parametrize("enable_fusion", [False, True])
def test_source_frontend_matches_feature_extractor_on_downmix(enable_fusion):
    config = get_config("paper", max_length_s=2.0, source_config={"enable_fusion": enable_fusion, "fusion_type": None})
    frontend = SourceFrontend.from_config(config)
    stereo = make_stereo(2, 2.0, delays=[3, -2])
    features, is_longer = frontend(stereo)
    assert features.shape == (2, 4 if enable_fusion else 1, 201, 64)
    assert not is_longer.any() and is_longer.shape == (2, 1)
    # The resampler is checked against torchaudio above; here the same 48 kHz down-mix feeds both.
    mono48 = frontend.resampler(stereo.mean(dim=1)).numpy()
    reference = ClapFeatureExtractor(
        frequency_min=50, frequency_max=14000, truncation="fusion" if enable_fusion else "rand_trunc", max_length_s=2
    )
    expected = reference(list(mono48), sampling_rate=48000, return_tensors="np")["input_features"]
    assert np.abs(features.numpy() - expected).max() <= 1e-3


def test_source_frontend_accepts_short_clips_for_tiny_config_and_rejects_too_long():
    config = get_config("tiny")
    frontend = SourceFrontend.from_config(config)
    features, _ = frontend(torch.randn(1, 2, 2 * 16000))
    assert features.shape == (1, 1, 201, 32)
    assert config.max_source_frames == 512
    with pytest.raises(ValueError, match="accepts at most 512"):
        frontend(torch.randn(1, 2, 6 * 16000))


def test_frontend_buffers_are_not_saved(tiny_model):
    keys = tiny_model.state_dict().keys()
    assert not any(k.endswith(("mel_filters", "kernel", "window")) for k in keys)


@pytest.mark.parametrize("input_features, planes", [("mag_phase", 4), ("mag_ipd", 4)])
def test_spatial_stft_shapes(input_features, planes):
    frontend = SpatialStftFrontend(SeldNetConfig(input_features=input_features))
    out = frontend(torch.randn(3, 2, 16000))
    assert out.shape == (3, planes, 16000 // 512 + 1, 513)
    cropped = SpatialStftFrontend(SeldNetConfig(input_features=input_features, max_frequency_bins=128))
    assert cropped(torch.randn(3, 2, 16000)).shape == (3, planes, 32, 128)


def test_spatial_stft_three_channels_and_channel_check():
    frontend = SpatialStftFrontend(SeldNetConfig(num_channels=3, input_features="mag_ipd"))
    assert frontend(torch.randn(1, 3, 4000)).shape == (1, 7, 8, 513)
    with pytest.raises(ValueError, match="3 channels"):
        frontend(torch.randn(1, 2, 4000))


def test_mag_phase_planes_are_magnitude_and_phase():
    config = SeldNetConfig(input_features="mag_phase", use_log_magnitude=False)
    x = torch.randn(1, 2, 8000)
    out = SpatialStftFrontend(config)(x)
    spec = torch.stft(x[0], 1024, 512, window=torch.hann_window(1024), center=True, return_complex=True)
    assert torch.allclose(out[0, :2], spec.abs().transpose(1, 2), atol=1e-4)
    assert torch.allclose(out[0, 2:], torch.angle(spec).transpose(1, 2), atol=1e-4)


def test_mag_ipd_encodes_interchannel_delay():
    delay = 2  # channel 1 lags channel 0 by 2 samples
    x = make_stereo(1, 1.0, delays=[delay])
    out = SpatialStftFrontend(SeldNetConfig(input_features="mag_ipd"))(x)
    cos, sin = out[0, 2, 2:-2, 1:200], out[0, 3, 2:-2, 1:200]
    omega = 2 * np.pi * torch.arange(1, 200) / 1024
    error = torch.angle(torch.exp(1j * (torch.atan2(sin, cos) + omega * delay)))
    assert error.abs().median() < 0.05
    same = SpatialStftFrontend(SeldNetConfig(input_features="mag_ipd"))(make_stereo(1, 1.0, delays=[0]))
    assert torch.allclose(same[0, 2], torch.ones_like(same[0, 2]), atol=1e-4)
    assert torch.allclose(same[0, 3], torch.zeros_like(same[0, 3]), atol=1e-4)


@pytest.mark.parametrize("float64", [True, False])
def test_front_ends_stay_in_full_precision_under_bf16_autocast(float64):
    """Resampling, STFT and mel filters ignore autocast; the towers after them follow it."""
    config = get_config("tiny", mel_float64=float64)
    waveforms = make_stereo(2, 1.0, seed=3)
    source, spatial = SourceFrontend.from_config(config), SpatialStftFrontend(config.spatial_config)
    plain_mel, plain_planes = source(waveforms)[0], spatial(waveforms)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mel, planes = source(waveforms)[0], spatial(waveforms)
        assert torch.matmul(waveforms[0], waveforms[0].T).dtype == torch.bfloat16  # autocast is on here
    assert mel.dtype == planes.dtype == torch.float32
    assert torch.equal(mel, plain_mel) and torch.equal(planes, plain_planes)
