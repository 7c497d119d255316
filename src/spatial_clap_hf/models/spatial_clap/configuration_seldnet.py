"""Configuration of the SELDnet-style spatial encoder (stereo STFT -> CRNN).

This file is part of the self-contained model family: it imports only torch,
numpy, transformers and its sibling model files, so that checkpoints saved with
``save_pretrained`` can be loaded with ``trust_remote_code=True``.
"""

from __future__ import annotations

from transformers.configuration_utils import PreTrainedConfig

INPUT_FEATURE_TYPES = ("mag_phase", "mag_ipd")
DOA_MODES = ("per_class", "single")


class SeldNetConfig(PreTrainedConfig):
    r"""Configuration of [`SeldNetModel`] and [`SeldNetForSoundEventLocalization`].

    Input: waveforms ``(batch, num_channels, samples)`` at ``sample_rate`` Hz. Each channel
    is turned into an STFT (``n_fft`` samples Hann window, ``hop_length`` samples hop,
    centred frames) and the feature planes below are stacked as image channels of shape
    ``(frames, frequency_bins)``.

    Args:
        sample_rate (`int`, defaults to 16000): rate of the input waveforms in Hz.
        n_fft (`int`, defaults to 1024): STFT window and FFT length in samples.
        hop_length (`int`, defaults to 512): STFT hop in samples.
        num_channels (`int`, defaults to 2): microphone channels of the input.
        input_features (`str`, defaults to `"mag_phase"`): feature planes.
            ``"mag_phase"``: magnitude of every channel, then phase of every channel
            (``2 * num_channels`` planes). ``"mag_ipd"``: magnitude of every channel, then
            cos and sin of the phase difference of every channel against channel 0
            (``num_channels + 2 * (num_channels - 1)`` planes, i.e. 4 for stereo). Same
            information, but the inter-channel form learns direction much faster.
        use_log_magnitude (`bool`, defaults to `True`): use ``log(magnitude + 1e-5)``
            instead of the linear magnitude.
        max_frequency_bins (`int`, *optional*): keep only the lowest this many STFT bins
            (cheaper; e.g. 256 bins of a 1024-point FFT at 16 kHz cover 0-4 kHz).
            ``None`` keeps all ``n_fft // 2 + 1`` bins.
        conv_filters (`list[int]`, defaults to `(64, 64, 64)`): output channels of the
            conv blocks (Conv2d 3x3, BatchNorm, ReLU, max-pool along frequency).
        frequency_pool_sizes (`list[int]`, defaults to `(8, 8, 2)`): max-pool size along
            frequency after each conv block (513 bins -> 64 -> 8 -> 4).
        gru_hidden_size (`int`, defaults to 128): GRU units per direction.
        gru_num_layers (`int`, defaults to 2): stacked bidirectional GRU layers.
        dropout (`float`, defaults to 0.0): dropout after conv blocks and between GRU layers.
        num_classes (`int`, defaults to 527): sound-event classes of the SED head
            (0 = no SED head, only allowed with ``doa_mode="single"``).
        doa_mode (`str`, defaults to `"per_class"`): ``"per_class"`` (SELD: one folded
            azimuth per class and frame) or ``"single"`` (DoA pretraining: one folded
            azimuth per clip, regressed from the time-pooled features).
        head_hidden_size (`int`, defaults to 128): hidden width of the 2-layer SED/DoA MLPs.
        doa_loss_weight (`float`, defaults to 1.0): weight of the DoA loss against the SED loss.
        sed_pos_weight (`float` or `"balanced"`, *optional*): weight of the positive (active-class)
            terms of the SED BCE. ``None`` is plain BCE (the paper's). With few active classes
            among many, plain BCE first settles on predicting "nothing active" and learns the
            classes very slowly; ``"balanced"`` uses ``num_classes - 1``.
        channels_last (`bool`, defaults to `True`): run the conv blocks in
            ``torch.channels_last`` memory format (faster on CPU; same results).
        initializer_range (`float`, defaults to 0.02): std of the normal init of
            linear and conv weights.
    """

    model_type = "seldnet"

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    num_channels: int = 2
    input_features: str = "mag_phase"
    use_log_magnitude: bool = True
    max_frequency_bins: int | None = None
    conv_filters: list[int] | tuple[int, ...] = (64, 64, 64)
    frequency_pool_sizes: list[int] | tuple[int, ...] = (8, 8, 2)
    gru_hidden_size: int = 128
    gru_num_layers: int = 2
    dropout: float = 0.0
    num_classes: int = 527
    doa_mode: str = "per_class"
    head_hidden_size: int = 128
    doa_loss_weight: float = 1.0
    sed_pos_weight: float | str | None = None
    channels_last: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self.conv_filters = [int(v) for v in self.conv_filters]
        self.frequency_pool_sizes = [int(v) for v in self.frequency_pool_sizes]
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        if self.input_features not in INPUT_FEATURE_TYPES:
            raise ValueError(
                f"SeldNetConfig.input_features={self.input_features!r} is not supported; use one of {INPUT_FEATURE_TYPES}."
            )
        if self.doa_mode not in DOA_MODES:
            raise ValueError(f"SeldNetConfig.doa_mode={self.doa_mode!r} is not supported; use one of {DOA_MODES}.")
        if self.num_channels < 1:
            raise ValueError(f"SeldNetConfig.num_channels must be >= 1, got {self.num_channels}.")
        if self.input_features == "mag_ipd" and self.num_channels < 2:
            raise ValueError(
                "SeldNetConfig.input_features='mag_ipd' needs at least 2 channels (phase differences against "
                f"channel 0), got num_channels={self.num_channels}; use input_features='mag_phase'."
            )
        if len(self.conv_filters) != len(self.frequency_pool_sizes) or not self.conv_filters:
            raise ValueError(
                f"SeldNetConfig needs one frequency pool size per conv block: got conv_filters={self.conv_filters} "
                f"and frequency_pool_sizes={self.frequency_pool_sizes}."
            )
        if isinstance(self.sed_pos_weight, str) and self.sed_pos_weight != "balanced":
            raise ValueError(
                f"SeldNetConfig.sed_pos_weight={self.sed_pos_weight!r}: use a number, 'balanced' or None."
            )
        if self.num_classes < 0:
            raise ValueError(f"SeldNetConfig.num_classes must be >= 0, got {self.num_classes}.")
        if self.num_classes == 0 and self.doa_mode == "per_class":
            raise ValueError("SeldNetConfig.doa_mode='per_class' needs num_classes >= 1 (one azimuth per class).")
        if self.max_frequency_bins is not None and not 1 <= self.max_frequency_bins <= self.n_fft // 2 + 1:
            raise ValueError(
                f"SeldNetConfig.max_frequency_bins={self.max_frequency_bins} must lie in [1, n_fft // 2 + 1 = "
                f"{self.n_fft // 2 + 1}] (or be None for all bins)."
            )
        if self.pooled_frequency_bins < 1:
            raise ValueError(
                f"SeldNetConfig: {self.num_frequency_bins} frequency bins pooled by {self.frequency_pool_sizes} leave "
                "no bin; use smaller frequency_pool_sizes or more max_frequency_bins."
            )

    @property
    def num_frequency_bins(self) -> int:
        """STFT bins fed to the network (after ``max_frequency_bins``)."""
        full = self.n_fft // 2 + 1
        return full if self.max_frequency_bins is None else min(full, self.max_frequency_bins)

    @property
    def num_input_planes(self) -> int:
        """Feature planes (image channels) produced from ``num_channels`` waveforms."""
        if self.input_features == "mag_phase":
            return 2 * self.num_channels
        return self.num_channels + 2 * (self.num_channels - 1)

    @property
    def pooled_frequency_bins(self) -> int:
        """Frequency bins left after the conv blocks' max-pooling."""
        bins = self.num_frequency_bins
        for pool in self.frequency_pool_sizes:
            bins //= pool
        return bins

    def readout_size(self, num_bins: int, mean_doa: bool = False) -> int:
        """Width of `SeldReadout`'s features: the class × direction map with ``num_bins`` direction
        bins (``num_classes * num_bins`` for ``doa_mode="per_class"``, ``num_bins`` for ``"single"``),
        plus with ``mean_doa`` the mean DoA and its square per class (per clip for ``"single"``)."""
        groups = self.num_classes if self.doa_mode == "per_class" else 1
        return groups * (num_bins + (2 if mean_doa else 0))

    @property
    def output_size(self) -> int:
        """Width of the frame features and of ``pooler_output`` (``2 * gru_hidden_size``)."""
        return 2 * self.gru_hidden_size


__all__ = ["SeldNetConfig"]
