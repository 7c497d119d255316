"""Batched spatialization on any torch device: convolution, mixtures, SCL permutations, targets.

Shapes: mono clips (batch, samples); RIRs (batch, channels, rir_samples); spatial signals
(batch, channels, samples). Every output keeps the clip length: the convolution's tail past
the clip end is cut. Azimuths are in degrees (array frame of ``conventions``); sample rates
in Hz.

Mixtures follow the paper: y = (1/n) Σ_i h_i * x_i for n sources x_i placed with RIRs h_i
of one room. Spatial contrastive learning (SCL) adds, for every mixture, all n! assignments
σ of the RIRs to the sources, y_σ = (1/n) Σ_i h_σ(i) * x_i, each with its own caption in
which source i is described at the azimuth of h_σ(i).

Typical use in a training collator (clips already on the device)::

    spatializer = Spatializer(bank, "train", seed=0, device="cuda")
    batch = spatializer(clips, clip_ids, captions, epoch=epoch, num_single=16, num_sources=2, scl=True)
    batch.waveforms        # (B, C, T) float32
    batch.captions         # spatial captions ("sp+src"), batch.captions_src content-only
    batch.seld_targets(clip_label_indices, num_classes)  # (B, K) activity, (B, K) folded azimuth
"""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .conventions import DEFAULT_PHRASES, PhraseSet, compose_caption, doa_class, fold_azimuth
from .rir_bank import RirBank, RirKey
from .rooms import SPLITS, canonical_split

__all__ = [
    "PairingSampler",
    "Scene",
    "SpatialBatch",
    "Spatializer",
    "convolve",
    "doa_targets",
    "fft_size",
    "mix",
    "mix_spectra",
    "permutations_of",
    "permuted_mixtures",
    "seld_frame_targets",
    "seld_targets",
    "source_activity",
]


# ---------------------------------------------------------------------------------------------
# Convolution and mixtures
# ---------------------------------------------------------------------------------------------


def fft_size(n: int, min_power_of_two: int = 8) -> int:
    """Smallest FFT length ≥ n of the form 2^a·3^b·5^c that is a multiple of ``min_power_of_two``.

    Requiring a factor of 2^3 avoids odd lengths such as 3^11, which are much slower than
    nearby lengths with a power-of-two factor.
    """
    if n < 1:
        raise ValueError(f"FFT length must be ≥ 1, got {n}.")
    best = None
    p5 = 1
    while best is None or p5 < best:
        p35 = p5
        while best is None or p35 < best:
            m = min_power_of_two
            while m * p35 < n:
                m *= 2
            best = m * p35 if best is None else min(best, m * p35)
            p35 *= 3
        p5 *= 5
    return best


def _check_clips(clips: torch.Tensor, name: str = "clips", ndim: int = 2) -> None:
    if not isinstance(clips, torch.Tensor) or clips.ndim != ndim or not clips.is_floating_point():
        got = tuple(clips.shape) if isinstance(clips, torch.Tensor) else type(clips).__name__
        layout = "(batch, samples)" if ndim == 2 else "(batch, sources, samples)"
        raise ValueError(f"{name} must be a float tensor shaped {layout} (mono clips), got {got}.")


def convolve(clips: torch.Tensor, rirs: torch.Tensor) -> torch.Tensor:
    """Convolve each mono clip with its multichannel RIR; output truncated to the clip length.

    clips (B, T) float, rirs (B, C, L) float on the same device → (B, C, T) float32:
    out[b, c, t] = Σ_k rirs[b, c, k] · clips[b, t − k] for t < T (batched rfft/irfft with an
    FFT length from ``fft_size``).
    """
    _check_clips(clips)
    if rirs.ndim != 3 or rirs.shape[0] != clips.shape[0]:
        raise ValueError(
            f"rirs must be shaped (batch, channels, rir_samples) with the clips' batch size "
            f"{clips.shape[0]}, got {tuple(rirs.shape)}."
        )
    return permuted_mixtures(clips[:, None], rirs[:, None], [(0,)])[:, 0]


def permutations_of(n: int) -> list[tuple[int, ...]]:
    """All n! assignments σ of n RIRs to n sources, identity first (itertools order)."""
    if n < 1:
        raise ValueError(f"Need at least one source, got {n}.")
    return list(itertools.permutations(range(n)))


def permuted_mixtures(
    sources: torch.Tensor,
    rirs: torch.Tensor,
    permutations: Sequence[Sequence[int]] | None = None,
) -> torch.Tensor:
    """Mixtures of n sources under several RIR assignments.

    sources (B, n, T) mono, rirs (B, n, C, L) (``rirs[:, j]`` is the RIR of direction j) →
    (B, P, C, T) float32 with out[:, p] = (1/n) Σ_i rirs[:, σ_p(i)] * sources[:, i]
    for the P ``permutations`` (default: all n!, identity first). Each source and RIR is
    transformed once; the permutations only recombine spectra.
    """
    _check_clips(sources, "sources", ndim=3)
    b, n, t = sources.shape
    if rirs.ndim != 4 or tuple(rirs.shape[:2]) != (b, n):
        raise ValueError(
            f"rirs must be shaped (batch, sources, channels, rir_samples) = ({b}, {n}, C, L), got {tuple(rirs.shape)}."
        )
    perms = permutations_of(n) if permutations is None else [tuple(p) for p in permutations]
    for p in perms:
        if sorted(p) != list(range(n)):
            raise ValueError(f"{p} is not a permutation of {n} sources.")
    rirs = rirs[..., :t]  # taps past the clip length never reach the kept output samples
    nfft = fft_size(t + rirs.shape[-1] - 1)
    rirs = rirs.to(device=sources.device, dtype=torch.float32)
    # Each chunk's RIR spectra are computed with the chunk, so that they stay in cache.
    return _mix_chunks(sources, rirs.shape[2], lambda s, e: torch.fft.rfft(rirs[s:e], n=nfft), perms, nfft)


def mix_spectra(
    sources: torch.Tensor, spectra: torch.Tensor, permutations: Sequence[Sequence[int]], nfft: int
) -> torch.Tensor:
    """``permuted_mixtures`` from RIR spectra computed beforehand (e.g. kept across batches).

    sources (B, n, T) mono; spectra (B, n, C, nfft // 2 + 1) complex, ``torch.fft.rfft`` of each
    RIR at ``nfft`` ≥ T + RIR length − 1 samples (shorter wraps the tails around) → (B, P, C, T)
    float32 for the P ``permutations``.
    """
    _check_clips(sources, "sources", ndim=3)
    b, n, t = sources.shape
    if spectra.ndim != 4 or tuple(spectra.shape[:2]) != (b, n) or spectra.shape[-1] != nfft // 2 + 1:
        raise ValueError(
            f"spectra must be shaped (batch, sources, channels, nfft // 2 + 1) = ({b}, {n}, C, {nfft // 2 + 1}), "
            f"got {tuple(spectra.shape)}."
        )
    perms = [tuple(p) for p in permutations]
    return _mix_chunks(sources, spectra.shape[2], lambda s, e: spectra[s:e], perms, nfft)


def _mix_chunks(
    sources: torch.Tensor,
    channels: int,
    spectra_of: Callable[[int, int], torch.Tensor],
    perms: list[tuple[int, ...]],
    nfft: int,
) -> torch.Tensor:
    """(B, n, T) sources → (B, P, C, T), a few batch items at a time on CPU (``_chunk_size``);
    ``spectra_of(start, end)`` gives the RIR spectra (end − start, n, C, F) of those items."""
    b, t = sources.shape[0], sources.shape[2]
    step = _chunk_size(sources.device, b)
    out = [_mix_chunk(sources[s : s + step], spectra_of(s, s + step), perms, nfft) for s in range(0, b, step)]
    if not out:
        return sources.new_zeros(0, len(perms), channels, t, dtype=torch.float32)
    return torch.cat(out) if len(out) > 1 else out[0]


def _chunk_size(device: torch.device, batch: int) -> int:
    """Batch items transformed together: all on accelerators; a few on CPU, where the spectra
    of a whole batch (tens of MB) fall out of cache and run ~2x slower than small chunks."""
    return max(1, batch if device.type != "cpu" else min(batch, 4))


def _mix_chunk(sources: torch.Tensor, h: torch.Tensor, perms: list[tuple[int, ...]], nfft: int) -> torch.Tensor:
    """(b, n, T) sources, (b, n, C, F) RIR spectra → (b, P, C, T) for the permutations ``perms``."""
    n, t = sources.shape[1], sources.shape[2]
    x = torch.fft.rfft(sources.float(), n=nfft)[:, :, None]  # (b, n, 1, F)
    spectra = []
    for perm in perms:
        acc = h[:, perm[0]] * x[:, 0]
        for i in range(1, n):
            acc += h[:, perm[i]] * x[:, i]
        spectra.append(acc)
    return torch.fft.irfft(torch.stack(spectra, dim=1), n=nfft)[..., :t] / n


def mix(sources: torch.Tensor, rirs: torch.Tensor) -> torch.Tensor:
    """y = (1/n) Σ_i h_i * x_i: sources (B, n, T), rirs (B, n, C, L) → (B, C, T) float32."""
    return permuted_mixtures(sources, rirs, [tuple(range(sources.shape[1]))])[:, 0]


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


def doa_targets(azimuths_deg: Sequence[float] | np.ndarray | torch.Tensor, device=None) -> torch.Tensor:
    """Single-source DoA regression targets: folded azimuths (degrees, [−90, 90]) shaped (B,)."""
    values = azimuths_deg.detach().cpu().numpy() if isinstance(azimuths_deg, torch.Tensor) else azimuths_deg
    folded = np.asarray(fold_azimuth(np.asarray(values, dtype=np.float64)), dtype=np.float32).reshape(-1)
    return torch.from_numpy(folded).to(device) if device is not None else torch.from_numpy(folded)


def seld_targets(
    label_indices: Sequence[Sequence[Sequence[int]]],
    azimuths_deg: Sequence[Sequence[float]],
    num_classes: int,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip-level SELD targets for static sources.

    ``label_indices[b][i]``: class indices of source i of sample b; ``azimuths_deg[b][i]`` its
    azimuth in degrees. Returns ``activity`` (B, num_classes) float32 in {0, 1} and ``doa``
    (B, num_classes) float32: the folded azimuth (degrees, [−90, 90]) of the source holding
    each active class, 0 where inactive. When two sources of a sample share a class, the
    first source (in the given order) sets that class's azimuth.
    """
    if len(label_indices) != len(azimuths_deg):
        raise ValueError(f"Got labels for {len(label_indices)} samples but azimuths for {len(azimuths_deg)}.")
    activity = np.zeros((len(label_indices), num_classes), dtype=np.float32)
    doa = np.zeros((len(label_indices), num_classes), dtype=np.float32)
    for b, (labels, azimuths) in enumerate(zip(label_indices, azimuths_deg)):
        if len(labels) != len(azimuths):
            raise ValueError(f"Sample {b}: {len(labels)} label lists but {len(azimuths)} azimuths (one per source).")
        for source_labels, azimuth in zip(labels, azimuths):
            for k in source_labels:
                if not 0 <= int(k) < num_classes:
                    raise ValueError(f"Sample {b}: class index {k} is outside [0, {num_classes}).")
                if activity[b, k] == 0:
                    activity[b, k] = 1.0
                    doa[b, k] = fold_azimuth(float(azimuth))
    out = torch.from_numpy(activity), torch.from_numpy(doa)
    return tuple(t.to(device) for t in out) if device is not None else out


def source_activity(
    clips: torch.Tensor, *, n_fft: int, hop_length: int, threshold_db: float = -30.0
) -> torch.Tensor:
    """Frame activity of mono clips (N, T) → (N, 1 + T // hop_length) float32 in {0, 1}.

    Frame t is centred on sample ``t * hop_length`` and spans ``n_fft`` samples (the framing of
    a centred STFT, as the SELDnet's); it is active when its energy is within ``threshold_db``
    (≤ 0) of the clip's most energetic frame. An all-zero clip is inactive everywhere.
    """
    _check_clips(clips)
    if threshold_db > 0:
        raise ValueError(f"threshold_db must be <= 0 dB (relative to the loudest frame), got {threshold_db}.")
    power = torch.nn.functional.pad(clips.float()[:, None] ** 2, (n_fft // 2, n_fft // 2))
    energy = torch.nn.functional.avg_pool1d(power, kernel_size=n_fft, stride=hop_length)[:, 0]
    floor = energy.amax(dim=1, keepdim=True) * 10.0 ** (threshold_db / 10.0)
    return ((energy >= floor) & (energy > 0)).float()


def seld_frame_targets(
    label_indices: Sequence[Sequence[Sequence[int]]],
    azimuths_deg: Sequence[Sequence[float]],
    activity: Sequence[torch.Tensor] | torch.Tensor,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-level SELD targets for static sources.

    As `seld_targets`, with ``activity`` the frame activity of every source
    (`source_activity`): a list whose item b is (n_sources_b, frames), or one tensor
    (B, max_sources, frames) whose rows past a sample's sources are ignored. Returns
    ``activity`` and ``doa`` (B, frames, num_classes) on the activity's device: a class is
    active in the frames where a source holding it is, and its DoA there is that source's
    folded azimuth (the earlier source wins where two share a class; elsewhere the clip-level
    DoA of `seld_targets`).
    """
    if not isinstance(activity, torch.Tensor):
        for b, (labels, act) in enumerate(zip(label_indices, activity)):
            if act.dim() != 2 or act.shape[0] != len(labels):
                raise ValueError(
                    f"Sample {b}: activity must be (sources, frames) with {len(labels)} sources, got {tuple(act.shape)}."
                )
        activity = torch.nn.utils.rnn.pad_sequence([a.float() for a in activity], batch_first=True)
    sources = max((len(labels) for labels in label_indices), default=0)
    if activity.dim() != 3 or activity.shape[0] != len(label_indices) or activity.shape[1] < sources:
        raise ValueError(
            f"activity must be (batch, sources, frames) with batch {len(label_indices)} and at least {sources} sources, "
            f"got {tuple(activity.shape)}."
        )
    clip_activity, clip_doa = seld_targets(label_indices, azimuths_deg, num_classes)
    # Which classes each source holds, and its folded azimuth: (B, S, K) and (B, S).
    holds = np.zeros((len(label_indices), activity.shape[1], num_classes), dtype=np.float32)
    folded = np.zeros(holds.shape[:2], dtype=np.float32)
    for b, (labels, azimuths) in enumerate(zip(label_indices, azimuths_deg)):
        for i, (source_labels, azimuth) in enumerate(zip(labels, azimuths)):
            holds[b, i, list(source_labels)] = 1.0
            folded[b, i] = fold_azimuth(float(azimuth))
    device = activity.device
    heard = (activity.float()[..., None] > 0) & (torch.from_numpy(holds).to(device)[:, :, None, :] > 0)  # (B, S, T, K)
    first = heard & (heard.cumsum(dim=1) == 1)
    out_activity = heard.any(dim=1)
    source_doa = (first.float() * torch.from_numpy(folded).to(device)[:, :, None, None]).sum(dim=1)
    out_doa = torch.where(out_activity, source_doa, clip_doa.to(device)[:, None, :])
    return out_activity.float(), out_doa


# ---------------------------------------------------------------------------------------------
# Pairings
# ---------------------------------------------------------------------------------------------


def _stable_int(value: int | str) -> int:
    """A non-negative integer identifying a clip id, stable across processes and runs."""
    if isinstance(value, (int, np.integer)) and value >= 0:
        return int(value)
    digest = hashlib.blake2b(str(value).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mixture_sizes(n: int, num_single: int, num_sources: int | Sequence[int]) -> list[int]:
    """Sizes of the mixtures that the ``n - num_single`` clips after the single-source ones form."""
    rest = n - num_single
    if not 0 <= num_single <= n:
        raise ValueError(f"num_single={num_single} must lie in [0, {n}] for a batch of {n} clips.")
    if isinstance(num_sources, (int, np.integer)):
        if num_sources < 1 or rest % num_sources:
            raise ValueError(
                f"Cannot split {n} clips into {num_single} single-source scenes and mixtures of "
                f"{num_sources}: the remaining {rest} clips must be a multiple of {num_sources}."
            )
        return [int(num_sources)] * (rest // num_sources)
    sizes = [int(k) for k in num_sources]
    if any(k < 1 for k in sizes) or sum(sizes) != rest:
        raise ValueError(
            f"Mixture sizes {sizes} must each be at least 1 and add up to the {rest} clips left after "
            f"{num_single} single-source scenes (a batch of {n} clips)."
        )
    return sizes


class PairingSampler:
    """Seeded assignment of (room_id, azimuth) RIRs to clips of one split.

    Every draw is a pure function of (seed, split, epoch, clip ids): the same clip gets the
    same RIR in the same epoch whatever the batch composition, order or worker. Train and
    val pairings are re-drawn each epoch; the test pairing ignores ``epoch`` (fixed for a
    seed). The sources of one scene share a room; with ``distinct_classes`` (default) they
    also lie in distinct DoA classes, so the captions of the n! assignments all differ.
    """

    def __init__(
        self,
        rooms: Sequence[int],
        azimuths_deg: Sequence[float],
        *,
        split: str,
        seed: int = 0,
        distinct_classes: bool = True,
        phrases: PhraseSet = DEFAULT_PHRASES,
    ):
        if len(rooms) == 0 or len(azimuths_deg) == 0:
            raise ValueError("A PairingSampler needs at least one room and one azimuth.")
        self.rooms = np.asarray(list(rooms), dtype=np.int64)
        self.azimuths = np.asarray(list(azimuths_deg), dtype=np.float64)
        self.split = canonical_split(split)
        self.seed = int(seed)
        self.distinct_classes = distinct_classes
        self.classes = np.asarray(doa_class(self.azimuths, phrases))
        self._split_code = SPLITS.index(self.split)

    @property
    def fixed(self) -> bool:
        """True for the test split, whose pairing does not change with the epoch."""
        return self.split == "test"

    def _rng(self, ids: Sequence[int | str], epoch: int) -> np.random.Generator:
        entropy = [self.seed, self._split_code, 0 if self.fixed else int(epoch), len(ids)]
        return np.random.default_rng(entropy + [_stable_int(i) for i in ids])

    def scene(self, clip_ids: Sequence[int | str], epoch: int = 0) -> list[RirKey]:
        """RIR keys for the sources of one scene (one room, one azimuth per source)."""
        n = len(clip_ids)
        if n == 0:
            raise ValueError("A scene needs at least one source clip id.")
        rng = self._rng(clip_ids, epoch)
        room = int(self.rooms[rng.integers(len(self.rooms))])
        azimuths: list[float] = []
        available = np.ones(len(self.azimuths), dtype=bool)
        for _ in range(n):
            choices = np.flatnonzero(available)
            if choices.size == 0:
                raise ValueError(
                    f"Cannot place {n} sources in distinct DoA classes ({len(set(self.classes.tolist()))} "
                    "classes on this azimuth grid); use fewer sources or distinct_classes=False."
                )
            j = int(choices[rng.integers(choices.size)])
            azimuths.append(float(self.azimuths[j]))
            if self.distinct_classes:
                available &= self.classes != self.classes[j]
        return [RirKey(room, az) for az in azimuths]

    def single(self, clip_ids: Sequence[int | str], epoch: int = 0) -> list[RirKey]:
        """One RIR key per single-source clip."""
        return [self.scene([i], epoch)[0] for i in clip_ids]


# ---------------------------------------------------------------------------------------------
# High-level batch API
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """One spatial scene: ``sources`` index the clip batch, ``keys`` the RIR of each source."""

    sources: tuple[int, ...]
    keys: tuple[RirKey, ...]

    def __post_init__(self) -> None:
        if len(self.sources) == 0 or len(self.sources) != len(self.keys):
            raise ValueError(
                f"A scene needs one RIR key per source, got {len(self.sources)} sources and {len(self.keys)} keys."
            )
        if len({k.room_id for k in self.keys}) != 1:
            raise ValueError(f"All sources of a scene must share a room, got rooms {[k.room_id for k in self.keys]}.")


@dataclass
class SpatialBatch:
    """Spatialized samples and their metadata, one entry per output sample.

    ``waveforms`` (B, C, T) float32; ``captions`` spatial ("sp+src") and ``captions_src``
    content-only captions; ``sources[b]`` the clip-batch indices of the sample's sources in
    caption order; ``azimuths_deg[b]`` the azimuth (degrees) each of those sources is heard
    from; ``permutation[b]`` the RIR assignment σ (source i uses the scene's RIR σ(i));
    ``is_identity`` (B,) bool marks the drawn assignment; ``scene_index`` (B,) long the scene
    each sample comes from (SCL samples of one mixture share it).
    """

    waveforms: torch.Tensor
    captions: list[str]
    captions_src: list[str]
    sources: list[tuple[int, ...]]
    azimuths_deg: list[tuple[float, ...]]
    room_ids: list[int]
    permutation: list[tuple[int, ...]]
    is_identity: torch.Tensor
    scene_index: torch.Tensor

    def __len__(self) -> int:
        return self.waveforms.shape[0]

    def num_sources(self) -> torch.Tensor:
        """(B,) long: sources per sample."""
        return torch.tensor([len(s) for s in self.sources], device=self.waveforms.device)

    def seld_targets(
        self, clip_label_indices: Sequence[Sequence[int]], num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(activity, doa), each (B, num_classes), from the class indices of every clip in the batch."""
        labels = [[clip_label_indices[i] for i in srcs] for srcs in self.sources]
        return seld_targets(labels, self.azimuths_deg, num_classes, device=self.waveforms.device)

    def seld_frame_targets(
        self, clip_label_indices: Sequence[Sequence[int]], num_classes: int, clip_activity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(activity, doa), each (B, frames, num_classes); ``clip_activity`` (N, frames) the frame
        activity of every clip of the batch (`source_activity`)."""
        labels = [[clip_label_indices[i] for i in srcs] for srcs in self.sources]
        width = max(len(srcs) for srcs in self.sources)
        index = torch.tensor([list(srcs) + [srcs[0]] * (width - len(srcs)) for srcs in self.sources])
        activity = clip_activity[index.to(clip_activity.device)]  # (B, sources, frames); padding rows hold no class
        out = seld_frame_targets(labels, self.azimuths_deg, activity, num_classes)
        return tuple(t.to(self.waveforms.device) for t in out)

    def doa_targets(self) -> torch.Tensor:
        """(B,) folded azimuths in degrees; only for batches of single-source samples."""
        if any(len(a) != 1 for a in self.azimuths_deg):
            raise ValueError("doa_targets needs single-source samples; use seld_targets for mixtures.")
        return doa_targets([a[0] for a in self.azimuths_deg], device=self.waveforms.device)


class SpectrumCache:
    """Tensors by key, least recently used first dropped once they exceed ``max_bytes`` (0: none kept)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Any, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any) -> torch.Tensor | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Any, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        if key in self._items:
            old = self._items.pop(key)
            self.bytes -= old.numel() * old.element_size()
        self._items[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= dropped.numel() * dropped.element_size()


class Spatializer:
    """Spatializes mono clips of one split with RIRs from a ``RirBank``, on ``device``.

    ``split`` selects the bank rooms (train / validation / test) and the pairing policy
    (``PairingSampler``); ``seed`` makes every pairing reproducible. ``max_rir_length``
    (samples) optionally cuts RIRs, trading reverberation tail for speed.

    Convolutions run at one FFT length per clip length, set by the split's longest RIR (cut at
    the clip length: later taps reach only the cut-off tail), so that each RIR's spectrum is
    computed once and kept (least recently used first dropped past
    ``spectrum_cache_mb`` MiB; 0 keeps none): a scene then costs one FFT per source and one
    inverse FFT per channel. Mirror-image azimuths share their stored RIR's spectrum.
    """

    def __init__(
        self,
        bank: RirBank,
        split: str,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        phrases: PhraseSet = DEFAULT_PHRASES,
        distinct_classes: bool = True,
        max_rir_length: int | None = None,
        spectrum_cache_mb: float = 256.0,
    ):
        self.bank = bank
        self.split = canonical_split(split)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.phrases = phrases
        self.max_rir_length = max_rir_length
        self.spectra = SpectrumCache(int(spectrum_cache_mb * 2**20))
        self.pairing = PairingSampler(
            bank.rooms(self.split),
            bank.azimuths(),
            split=self.split,
            seed=seed,
            distinct_classes=distinct_classes,
            phrases=phrases,
        )

    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) the clips must have: the bank's."""
        return self.bank.sample_rate

    @property
    def num_channels(self) -> int:
        return self.bank.num_channels

    def rirs(self, keys: Sequence[tuple[int, float]]) -> torch.Tensor:
        """RIRs (B, C, L) float32 on the device for (room_id, azimuth_deg) keys."""
        return self.bank.get_batch(keys, device=self.device, max_length=self.max_rir_length)

    def taps(self, samples: int) -> int:
        """RIR samples that reach the first ``samples`` output samples: the split's longest RIR, cut at
        ``max_rir_length`` and at the clip length (later taps only reach the cut-off tail)."""
        longest = min(self.bank.max_length(self.split), samples)
        return longest if self.max_rir_length is None else min(longest, self.max_rir_length)

    def fft_length(self, samples: int) -> int:
        """FFT length of the convolutions for clips of ``samples``: room for ``taps(samples)``."""
        return fft_size(samples + self.taps(samples) - 1)

    def rir_spectra(self, keys: Sequence[tuple[int, float]], samples: int) -> tuple[torch.Tensor, int]:
        """``(spectra, nfft)``: (B, C, nfft // 2 + 1) complex64 spectra of the RIRs of (room_id,
        azimuth_deg) ``keys``, cut to ``taps(samples)``, at ``nfft = fft_length(samples)``, on the device:
        kept ones reused, the others computed in one batch and kept."""
        taps, nfft = self.taps(samples), self.fft_length(samples)
        stored = [self.bank.stored_key(room_id, az) for room_id, az in keys]

        def compute(batch: list[tuple[int, int]]) -> torch.Tensor:
            queries = [(room_id, millideg / 1000.0) for room_id, millideg in batch]  # stored: no swap
            return torch.fft.rfft(self.bank.get_batch(queries, device=self.device, max_length=taps), n=nfft)

        missing = list(dict.fromkeys(key for key, _ in stored if self.spectra.get((key, taps, nfft)) is None))
        if missing:
            for key, spectrum in zip(missing, compute(missing)):
                self.spectra.put((key, taps, nfft), spectrum)
        parts = []
        for key, swap in stored:
            spectrum = self.spectra.get((key, taps, nfft))
            if spectrum is None:  # not kept (the cache is smaller than one batch): compute it again
                spectrum = compute([key])[0]
            parts.append(spectrum.flip(0) if swap else spectrum)
        return torch.stack(parts), nfft

    def spatialize(self, clips: torch.Tensor, keys: Sequence[tuple[int, float]]) -> torch.Tensor:
        """Single-source scenes: clips (B, T) at ``sample_rate`` → (B, C, T), one key per clip."""
        _check_clips(clips)
        if len(keys) != clips.shape[0]:
            raise ValueError(f"Got {clips.shape[0]} clips but {len(keys)} RIR keys; give one key per clip.")
        spectra, nfft = self.rir_spectra(keys, clips.shape[-1])
        return mix_spectra(clips[:, None], spectra.to(clips.device)[:, None], [(0,)], nfft)[:, 0]

    def draw_scenes(
        self,
        clip_ids: Sequence[int | str],
        *,
        epoch: int = 0,
        num_single: int | None = None,
        num_sources: int | Sequence[int] = 2,
        num_twins: int = 0,
    ) -> list[Scene]:
        """Group a clip batch into scenes and draw their RIRs.

        The first ``num_single`` clips (default: all) become single-source scenes; the rest
        form mixtures: ``num_sources`` at a time (their count must divide evenly), or, given a
        sequence of sizes, one mixture of each size in that order (e.g. ``[2, 2, 3]``). The
        first ``num_twins`` single-source clips are placed twice, at two directions of different
        DoA classes in one room (consecutive scenes): the same sound whose only difference is
        where it is, the single-source counterpart of a mixture's swapped assignments.
        """
        n = len(clip_ids)
        num_single = n if num_single is None else num_single
        sizes = _mixture_sizes(n, num_single, num_sources)
        if not 0 <= num_twins <= num_single:
            raise ValueError(f"num_twins={num_twins} must lie in [0, num_single={num_single}].")
        scenes = []
        for i in range(num_single):
            if i < num_twins:
                keys = self.pairing.scene([clip_ids[i], clip_ids[i]], epoch)
                scenes += [Scene((i,), (keys[0],)), Scene((i,), (keys[1],))]
            else:
                scenes.append(Scene((i,), tuple(self.pairing.scene([clip_ids[i]], epoch))))
        start = num_single
        for size in sizes:
            group = tuple(range(start, start + size))
            scenes.append(Scene(group, tuple(self.pairing.scene([clip_ids[i] for i in group], epoch))))
            start += size
        return scenes

    def render(
        self,
        clips: torch.Tensor,
        scenes: Sequence[Scene],
        captions: Sequence[str],
        *,
        scl: bool = False,
    ) -> SpatialBatch:
        """Render scenes of a clip batch: clips (N, T) at ``sample_rate`` → a ``SpatialBatch``.

        ``captions[i]`` is the content caption of clip i. Without ``scl`` each scene gives one
        sample; with ``scl`` a scene of n sources gives its n! assignments as consecutive
        samples (drawn assignment first). Output is on the clips' device.
        """
        _check_clips(clips)
        if len(captions) != clips.shape[0]:
            raise ValueError(f"Got {clips.shape[0]} clips but {len(captions)} captions; give one caption per clip.")
        parts: list[tuple[int, torch.Tensor, list[tuple[int, ...]]]] = []  # (scene, (P, C, T), perms)
        by_size: dict[int, list[int]] = {}
        for s, scene in enumerate(scenes):
            by_size.setdefault(len(scene.sources), []).append(s)
        for n, indices in by_size.items():
            perms = permutations_of(n) if scl else [tuple(range(n))]
            sources = clips[torch.as_tensor([scenes[s].sources for s in indices], device=clips.device)]  # (M, n, T)
            keys = [k for s in indices for k in scenes[s].keys]
            spectra, nfft = self.rir_spectra(keys, clips.shape[-1])
            spectra = spectra.to(clips.device).reshape(len(indices), n, *spectra.shape[1:])
            audio = mix_spectra(sources, spectra, perms, nfft)
            parts += [(s, audio[m], perms) for m, s in enumerate(indices)]
        parts.sort(key=lambda p: p[0])
        return self._assemble(parts, scenes, captions)

    def _assemble(self, parts, scenes: Sequence[Scene], captions: Sequence[str]) -> SpatialBatch:
        waves, caps, caps_src, srcs, azs, rooms, perms_out, ident, scene_idx = [], [], [], [], [], [], [], [], []
        for s, audio, perms in parts:
            scene = scenes[s]
            content = [captions[i] for i in scene.sources]
            caption_src = compose_caption(content, None, self.phrases)
            for p, perm in enumerate(perms):
                azimuths = tuple(float(scene.keys[j].azimuth_deg) for j in perm)
                waves.append(audio[p])
                caps.append(compose_caption(content, azimuths, self.phrases))
                caps_src.append(caption_src)
                srcs.append(tuple(scene.sources))
                azs.append(azimuths)
                rooms.append(scene.keys[0].room_id)
                perms_out.append(tuple(perm))
                ident.append(tuple(perm) == tuple(range(len(perm))))
                scene_idx.append(s)
        device = waves[0].device if waves else self.device
        return SpatialBatch(
            waveforms=torch.stack(waves) if waves else torch.zeros(0, self.num_channels, 0, device=device),
            captions=caps,
            captions_src=caps_src,
            sources=srcs,
            azimuths_deg=azs,
            room_ids=rooms,
            permutation=perms_out,
            is_identity=torch.tensor(ident, dtype=torch.bool, device=device),
            scene_index=torch.tensor(scene_idx, dtype=torch.long, device=device),
        )

    def __call__(
        self,
        clips: torch.Tensor,
        clip_ids: Sequence[int | str],
        captions: Sequence[str],
        *,
        epoch: int = 0,
        num_single: int | None = None,
        num_sources: int | Sequence[int] = 2,
        scl: bool = False,
        num_twins: int = 0,
    ) -> SpatialBatch:
        """Draw scenes for a clip batch and render them (``draw_scenes`` + ``render``).

        clips (N, T) mono at ``sample_rate`` on any device; ``clip_ids`` stable ids of the
        clips (dataset indices or id strings) that key the seeded pairing; ``captions`` one
        content caption per clip. E.g. the paper's batch: 32 clips, num_single=16,
        num_sources=2 → 24 samples, or 32 with ``scl=True`` (and ``num_twins`` more).
        """
        if len(clip_ids) != clips.shape[0]:
            raise ValueError(f"Got {clips.shape[0]} clips but {len(clip_ids)} clip ids.")
        scenes = self.draw_scenes(
            clip_ids, epoch=epoch, num_single=num_single, num_sources=num_sources, num_twins=num_twins
        )
        return self.render(clips, scenes, captions, scl=scl)
