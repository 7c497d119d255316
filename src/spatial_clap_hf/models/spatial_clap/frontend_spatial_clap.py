"""Batched, on-device feature front-ends of the Spatial CLAP model family.

Modules here hold no trainable weights, only non-persistent buffers (resampling
kernel, STFT window, mel filters) that are rebuilt by ``reset_buffers()``; the model
classes call it from ``_init_weights`` so that buffers are correct after
``from_pretrained`` (which materialises non-persistent buffers empty).

* :class:`SincResampler`: band-limited windowed-sinc resampling (same kernel as
  ``torchaudio.functional.resample`` with its defaults), pure torch.
* :class:`ClapLogMel`: the CLAP log-mel spectrogram exactly as
  ``transformers.ClapFeatureExtractor`` computes it, batched in torch.
* :class:`SourceFrontend`: waveforms at the model rate -> HTS-AT ``input_features``.
* :class:`SpatialStftFrontend`: multichannel waveforms -> SELDnet feature planes.

This file is part of the self-contained model family: it imports only torch,
numpy, transformers and its sibling model files.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from transformers.audio_utils import mel_filter_bank

from .configuration_seldnet import SeldNetConfig

_MAGNITUDE_EPS = 1e-5


def _full_precision(tensor: torch.Tensor) -> torch.autocast:
    """A context that turns autocast off: front-ends (resampling, STFT, mel filters) compute in
    float32 or float64 also inside a bf16/fp16 autocast region; the towers after them follow it."""
    return torch.autocast(tensor.device.type, enabled=False)


class SincResampler(nn.Module):
    """Resample the last axis from ``orig_freq`` Hz to ``new_freq`` Hz.

    Hann-windowed sinc interpolation with ``lowpass_filter_width=6`` and ``rolloff=0.99``,
    the defaults of ``torchaudio.functional.resample``; the output has
    ``ceil(samples * new_freq / orig_freq)`` samples.

    The polyphase filter runs as one matrix product: each window of the input yields ``block``
    frames of all ``new`` phases through a banded matrix (the kernel repeated down its
    diagonal), which is much faster on CPUs than a one-channel strided convolution. ``block``
    (at most 16) keeps the multiplications by the band's zeros at most about 1.5 times the
    kernel's length per output sample.
    """

    def __init__(self, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6, rolloff: float = 0.99):
        super().__init__()
        if int(orig_freq) != orig_freq or int(new_freq) != new_freq or orig_freq <= 0 or new_freq <= 0:
            raise ValueError(f"Resampling needs positive integer rates in Hz, got {orig_freq} -> {new_freq}.")
        gcd = math.gcd(int(orig_freq), int(new_freq))
        self.orig_freq = int(orig_freq)
        self.new_freq = int(new_freq)
        self.orig = self.orig_freq // gcd
        self.new = self.new_freq // gcd
        self.lowpass_filter_width = lowpass_filter_width
        self.rolloff = rolloff
        base_freq = min(self.orig, self.new) * rolloff
        self.width = math.ceil(lowpass_filter_width * self.orig / base_freq)
        kernel = self._kernel() if self.orig != self.new else torch.ones(1, 1, 1)
        self.register_buffer("kernel", kernel, persistent=False)
        self.block = max(1, min(16, 3 * kernel.shape[-1] // (2 * self.orig)))
        self.register_buffer("banded", self._banded(kernel), persistent=False)

    def _kernel(self) -> torch.Tensor:
        """Polyphase kernel ``(new, 1, 2 * width + orig)`` as float32, computed on the CPU in float64."""
        base_freq = min(self.orig, self.new) * self.rolloff
        idx = torch.arange(-self.width, self.width + self.orig, dtype=torch.float64, device="cpu")[None, None] / self.orig
        t = torch.arange(0, -self.new, -1, dtype=torch.float64, device="cpu")[:, None, None] / self.new + idx
        t = (t * base_freq).clamp(-self.lowpass_filter_width, self.lowpass_filter_width)
        window = torch.cos(t * math.pi / self.lowpass_filter_width / 2) ** 2
        t = t * math.pi
        kernels = torch.where(t == 0, torch.ones_like(t), t.sin() / t)
        return (kernels * window * (base_freq / self.orig)).to(torch.float32)

    def _banded(self, kernel: torch.Tensor) -> torch.Tensor:
        """``(block * orig + K - orig, block * new)``: column ``m * new + p`` holds phase p's kernel of
        length K at rows ``m * orig ...``, so one input window gives ``block`` frames of every phase."""
        taps = kernel.shape[-1]
        banded = torch.zeros(self.block * self.orig + taps - self.orig, self.block * self.new, dtype=kernel.dtype)
        for m in range(self.block):
            banded[m * self.orig : m * self.orig + taps, m * self.new : (m + 1) * self.new] = kernel[:, 0].T
        return banded

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Recompute the kernel buffers in place (after meta-device construction or loading)."""
        if self.orig != self.new:
            kernel = self._kernel()
            self.kernel.copy_(kernel.to(self.kernel.device))
            self.banded.copy_(self._banded(kernel).to(self.banded.device))

    def output_length(self, num_samples: int) -> int:
        """Samples after resampling ``num_samples`` input samples."""
        return math.ceil(self.new * num_samples / self.orig)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``(..., samples)`` at ``orig_freq`` Hz -> ``(..., output_length(samples))`` at ``new_freq`` Hz."""
        if self.orig == self.new:
            return waveforms
        shape = waveforms.shape
        flat = waveforms.reshape(-1, shape[-1])
        length, frames_out = flat.shape[-1], self.output_length(flat.shape[-1])
        rows, hop = self.banded.shape[0], self.block * self.orig
        windows = -(-frames_out // (self.block * self.new))
        # Frame j (outputs j * new ... j * new + new - 1) reads the padded input from j * orig on.
        right = max(0, (windows - 1) * hop + rows - length - self.width)
        padded = nn.functional.pad(flat, (self.width, right))
        out = padded.unfold(-1, rows, hop) @ self.banded.to(dtype=flat.dtype)  # (N, windows, block * new)
        out = out.reshape(flat.shape[0], -1)[:, :frames_out]
        return out.reshape(*shape[:-1], out.shape[-1])


class ClapLogMel(nn.Module):
    """CLAP log-mel spectrogram, matching ``transformers.ClapFeatureExtractor``.

    Centred STFT with reflect padding, periodic Hann window of ``n_fft`` samples, hop
    ``hop_length`` samples, power spectrum, mel filters (``mel_scale="slaney"`` with Slaney
    norm as used by ``truncation="rand_trunc"``, or ``"htk"`` without norm as used by
    ``truncation="fusion"``), floor 1e-10, then ``10 * log10``. With ``float64=True`` the STFT
    runs in double precision (as the reference does; float32 drifts by a few 1e-3 dB in bands
    ~90 dB below the peak, e.g. above 8 kHz of upsampled 16 kHz audio); the output is float32.
    """

    def __init__(
        self,
        sample_rate: int = 48000,
        n_fft: int = 1024,
        hop_length: int = 480,
        num_mel_bins: int = 64,
        fmin: float = 50.0,
        fmax: float = 14000.0,
        mel_scale: str = "slaney",
        float64: bool = True,
    ):
        super().__init__()
        if mel_scale not in ("slaney", "htk"):
            raise ValueError(f"ClapLogMel mel_scale must be 'slaney' or 'htk', got {mel_scale!r}.")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.num_mel_bins = num_mel_bins
        self.fmin = fmin
        self.fmax = fmax
        self.mel_scale = mel_scale
        self.float64 = float64
        window, filters = self._compute_buffers()
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_filters", filters, persistent=False)

    def _compute_buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Periodic Hann window ``(n_fft,)`` and mel filters ``(n_fft // 2 + 1, num_mel_bins)``, float32 on CPU."""
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n_fft) / self.n_fft)
        filters = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=self.num_mel_bins,
            min_frequency=self.fmin,
            max_frequency=self.fmax,
            sampling_rate=self.sample_rate,
            norm="slaney" if self.mel_scale == "slaney" else None,
            mel_scale=self.mel_scale,
        )
        as_tensor = lambda a: torch.tensor(np.asarray(a, dtype=np.float32), device="cpu")  # noqa: E731
        return as_tensor(window), as_tensor(filters)

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Recompute window and mel filters in place."""
        window, filters = self._compute_buffers()
        self.window.copy_(window.to(self.window.device))
        self.mel_filters.copy_(filters.to(self.mel_filters.device))

    def num_frames(self, num_samples: int) -> int:
        """Frames of a ``num_samples``-sample waveform (centred STFT)."""
        return num_samples // self.hop_length + 1

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Mono waveforms ``(batch, samples)`` at ``sample_rate`` Hz -> log-mel in dB ``(batch, frames, num_mel_bins)``."""
        if waveforms.shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"ClapLogMel needs more than n_fft // 2 = {self.n_fft // 2} samples for reflect padding, "
                f"got {waveforms.shape[-1]}; pad or repeat the clip (the feature extractor does)."
            )
        dtype = torch.float64 if self.float64 else torch.float32
        with _full_precision(waveforms):
            spec = torch.stft(
                waveforms.to(dtype),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window.to(dtype),
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
            power = spec.real.square() + spec.imag.square()  # (batch, bins, frames)
            mel = torch.matmul(power.transpose(1, 2), self.mel_filters.to(dtype)).clamp_min(1e-10)
            return (10.0 * torch.log10(mel)).float()


class SourceFrontend(nn.Module):
    """Waveforms ``(batch, channels, samples)`` at ``sample_rate`` Hz -> HTS-AT inputs.

    Channel mean, resampling to ``source_sample_rate`` Hz, CLAP log-mel. Returns
    ``input_features`` ``(batch, 1, frames, num_mel_bins)`` (``(batch, 4, ...)`` copies for
    ``enable_fusion`` configs, as ``ClapFeatureExtractor`` does for clips no longer than the
    maximum) and ``is_longer`` ``(batch, 1)`` all False. Repeat-padding to the clip length
    is the feature extractor's job: this module computes mel from the length it gets.
    """

    def __init__(
        self,
        sample_rate: int,
        source_sample_rate: int,
        n_fft: int,
        hop_length: int,
        num_mel_bins: int,
        fmin: float,
        fmax: float,
        enable_fusion: bool,
        max_frames: int,
        float64: bool = True,
    ):
        super().__init__()
        self.enable_fusion = enable_fusion
        self.max_frames = max_frames
        self.resampler = SincResampler(sample_rate, source_sample_rate)
        self.log_mel = ClapLogMel(
            sample_rate=source_sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            num_mel_bins=num_mel_bins,
            fmin=fmin,
            fmax=fmax,
            mel_scale="htk" if enable_fusion else "slaney",
            float64=float64,
        )

    @classmethod
    def from_config(cls, config) -> "SourceFrontend":
        """Build from a ``SpatialClapConfig``."""
        return cls(
            sample_rate=config.sample_rate,
            source_sample_rate=config.source_sample_rate,
            n_fft=config.mel_n_fft,
            hop_length=config.mel_hop_length,
            num_mel_bins=config.source_config.num_mel_bins,
            fmin=config.mel_fmin,
            fmax=config.mel_fmax,
            enable_fusion=config.source_config.enable_fusion,
            max_frames=config.max_source_frames,
            float64=config.mel_float64,
        )

    def forward(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, channels, samples)`` -> (``input_features`` ``(batch, 1 or 4, frames, mels)``, ``is_longer`` ``(batch, 1)``)."""
        if waveforms.dim() != 3:
            raise ValueError(f"Expected waveforms (batch, channels, samples), got shape {tuple(waveforms.shape)}.")
        frames = self.log_mel.num_frames(self.resampler.output_length(waveforms.shape[-1]))
        if frames > self.max_frames:
            seconds = waveforms.shape[-1] / self.resampler.orig_freq
            raise ValueError(
                f"A clip of {waveforms.shape[-1]} samples ({seconds:.2f} s) "
                f"gives {frames} mel frames but the source encoder accepts at most {self.max_frames}; cut clips to the "
                "model's max_length_s (the feature extractor does)."
            )
        with _full_precision(waveforms):
            mel = self.log_mel(self.resampler(waveforms.float().mean(dim=1)))[:, None]  # (batch, 1, frames, mels)
        if self.enable_fusion:
            mel = mel.expand(-1, 4, -1, -1).contiguous()
        is_longer = torch.zeros(waveforms.shape[0], 1, dtype=torch.bool, device=waveforms.device)
        return mel, is_longer


class SpatialStftFrontend(nn.Module):
    """Multichannel waveforms -> SELDnet feature planes ``(batch, planes, frames, bins)``.

    Per-channel centred STFT (reflect padding, periodic Hann window, ``n_fft``/``hop_length``
    samples from the config), the lowest ``num_frequency_bins`` bins kept, planes as set by
    ``SeldNetConfig.input_features`` (see there).
    """

    def __init__(self, config: SeldNetConfig):
        super().__init__()
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.num_channels = config.num_channels
        self.num_bins = config.num_frequency_bins
        self.input_features = config.input_features
        self.use_log_magnitude = config.use_log_magnitude
        self.register_buffer("window", self._window(), persistent=False)

    def _window(self) -> torch.Tensor:
        return torch.hann_window(self.n_fft, periodic=True, dtype=torch.float32, device="cpu")

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Recompute the STFT window in place."""
        self.window.copy_(self._window().to(self.window.device))

    def num_frames(self, num_samples: int) -> int:
        """STFT frames of a ``num_samples``-sample clip."""
        return num_samples // self.hop_length + 1

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, samples)`` -> float32 ``(batch, planes, frames, bins)``."""
        if waveforms.dim() != 3 or waveforms.shape[1] != self.num_channels:
            raise ValueError(
                f"The spatial encoder expects waveforms (batch, {self.num_channels} channels, samples), got shape "
                f"{tuple(waveforms.shape)}."
            )
        if waveforms.shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"The spatial encoder needs more than n_fft // 2 = {self.n_fft // 2} samples per clip, got "
                f"{waveforms.shape[-1]}."
            )
        with _full_precision(waveforms):
            return self._planes(waveforms)

    def _planes(self, waveforms: torch.Tensor) -> torch.Tensor:
        batch, channels, samples = waveforms.shape
        spec = torch.stft(
            waveforms.reshape(batch * channels, samples).float(),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        spec = spec[:, : self.num_bins].reshape(batch, channels, self.num_bins, -1).transpose(2, 3)
        magnitude = spec.abs()
        if self.use_log_magnitude:
            magnitude = torch.log(magnitude + _MAGNITUDE_EPS)
        if self.input_features == "mag_phase":
            planes = [magnitude, torch.angle(spec)]
        else:
            # cos / sin of the phase difference to channel 0, from the normalised cross-spectrum.
            cross = spec[:, 1:] * spec[:, :1].conj()
            cross = cross / (cross.abs() + 1e-12)
            planes = [magnitude, cross.real, cross.imag]
        return torch.cat(planes, dim=1)


__all__ = ["ClapLogMel", "SincResampler", "SourceFrontend", "SpatialStftFrontend"]
