"""The embedded synthetic source corpus: captioned, dry, mono sound events; nothing downloaded.

Each clip holds one procedurally synthesised event of one of ``SYNTHETIC_CLASSES``
(tones, sweeps, noise bands, clicks, bells, buzzes, sirens, vowels, ...), drawn with
attributes — pitch (low/mid/high), repetition rate (slow/fast), loudness (soft/loud) and
duration (short/long) where they apply — that the caption states in plain English
("A brief, loud fast high-pitched beeping."). The event sits inside a fixed-length
clip with a random onset and is peak-normalised to its loudness (soft peaks 0.12–0.25,
loud 0.6–0.9: no clipping). The label is the class name, one per clip, so SELD
pretraining has classes. Everything is deterministic for a seed; clip ``i`` of a split
depends only on ``(seed, split, i)``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import datasets
import numpy as np
import scipy.io.wavfile
from scipy import fft as sp_fft
from scipy import signal

from ..spatial.rooms import SPLITS
from .audiocaps import check_corpus_output_dir, load_corpus, save_corpus
from .schema import SOURCE_FEATURES

__all__ = [
    "CACHE_KEY_FILE",
    "SYNTHETIC_CLASSES",
    "ClipSpec",
    "caption_for",
    "draw_clip_spec",
    "generate_clips",
    "make_synthetic_corpus",
    "synthesize_clip",
]

logger = logging.getLogger(__name__)

#: Bump when the synthesis or captions change, so cached corpora are regenerated.
GENERATOR_VERSION = 1
#: File next to a saved synthetic corpus holding the parameters it was made with.
CACHE_KEY_FILE = "synthetic_corpus.json"
MIN_SAMPLE_RATE = 8000

PITCHES = ("low", "mid", "high")
RATES = ("slow", "fast")
LOUDNESSES = ("soft", "loud")
DURATIONS = ("short", "long")
_PEAK = {"soft": (0.12, 0.25), "loud": (0.6, 0.9)}
_DURATION_FRACTION = {"short": (0.15, 0.3), "long": (0.55, 0.85)}  # of the clip length
_MIN_EVENT_SECONDS = 0.1


# --------------------------------------------------------------------------- signal helpers
# Every synthesiser: (rng, n samples, sample_rate Hz, pitch Hz | None, rate Hz | None) -> (n,) float64.


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _harmonic_sum(phase: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_k weights[k-1]·sin(k·phase), by the Chebyshev recursion (no per-harmonic sin)."""
    s_prev, s = np.zeros_like(phase), np.sin(phase)
    two_cos = 2.0 * np.cos(phase)
    out = weights[0] * s
    for w in weights[1:]:
        s_prev, s = s, two_cos * s - s_prev
        out += w * s
    return out


def _max_harmonics(f0: float, sr: int, cap: int) -> int:
    return int(max(1, min(cap, np.floor(0.45 * sr / f0))))


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """White noise shaped by a smooth band-pass |H| = 1/(1+(lo/f)^4) · 1/(1+(f/hi)^4)."""
    n_fft = sp_fft.next_fast_len(n, real=True)
    spectrum = sp_fft.rfft(rng.standard_normal(n_fft))
    f = np.maximum(sp_fft.rfftfreq(n_fft, 1.0 / sr), 1e-3)
    gain = 1.0 / (1.0 + (lo / f) ** 4) / (1.0 + (f / hi) ** 4)
    return sp_fft.irfft(spectrum * gain, n_fft)[:n]


def _place(kernel: np.ndarray, times_s: np.ndarray, amplitudes: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Sum of ``kernel`` copies starting at ``times_s`` (seconds) with ``amplitudes``, length n."""
    impulses = np.zeros(n)
    idx = np.clip((times_s * sr).astype(int), 0, n - 1)
    np.add.at(impulses, idx, amplitudes)
    return signal.oaconvolve(impulses, kernel)[:n]


def _regular_times(rng: np.random.Generator, n: int, sr: int, rate: float, jitter: float = 0.05) -> np.ndarray:
    period = 1.0 / rate
    times = np.arange(0.0, n / sr, period)
    return np.clip(times + rng.uniform(-jitter, jitter, times.size) * period, 0.0, None)


def _segment_phase(t: np.ndarray, duration: float, rate: float) -> tuple[np.ndarray, float]:
    """Time within repeating segments of length min(1/rate, duration), and that length."""
    seg = min(1.0 / rate, duration)
    return np.mod(t, seg), seg


def _fade(n: int, sr: int, seconds: float) -> np.ndarray:
    m = max(1, min(n // 2, int(seconds * sr)))
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, m))
    env = np.ones(n)
    env[:m], env[n - m :] = ramp, ramp[::-1]
    return env


# --------------------------------------------------------------------------- synthesisers


def _tone(rng, n, sr, f, r):
    return np.sin(2 * np.pi * f * _time(n, sr) + rng.uniform(0, 2 * np.pi))


def _sweep(rng, n, sr, f, r, up: bool):
    tau, seg = _segment_phase(_time(n, sr), n / sr, r)
    ratio = 3.0
    if up:  # f → 3f, exponential
        phase = 2 * np.pi * f * seg / np.log(ratio) * (ratio ** (tau / seg) - 1.0)
    else:  # 3f → f
        phase = 2 * np.pi * ratio * f * seg / np.log(ratio) * (1.0 - ratio ** (-tau / seg))
    window = np.sin(np.pi * tau / seg) ** 0.5  # hides the phase reset between sweeps
    return window * np.sin(phase)


def _rumble(rng, n, sr, f, r):
    t = _time(n, sr)
    return _band_noise(rng, n, sr, 30.0, 200.0) * (1.0 + 0.5 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.3)))


def _hiss(rng, n, sr, f, r):
    return _band_noise(rng, n, sr, 0.25 * sr, 0.47 * sr)


def _ticking(rng, n, sr, f, r):
    k = _time(int(0.03 * sr), sr)
    fr = min(rng.uniform(2500.0, 3500.0), 0.4 * sr)
    kernel = np.exp(-k / 0.004) * np.sin(2 * np.pi * fr * k)
    times = _regular_times(rng, n, sr, r, 0.02)
    return _place(kernel, times, np.ones(times.size), n, sr)


def _crackle(rng, n, sr, f, r):
    k = _time(int(0.004 * sr), sr)
    kernel = np.diff(rng.standard_normal(k.size + 1)) * np.exp(-k / 0.001)
    count = rng.poisson(r * n / sr) + 1
    times = rng.uniform(0.0, n / sr, count)
    return _place(kernel, times, rng.uniform(0.2, 1.0, count), n, sr)


def _bell(rng, n, sr, f, r):
    t = _time(n, sr)
    ratios = np.array([1.0, 2.76, 5.40, 8.93, 13.34])
    amps = np.array([1.0, 0.7, 0.5, 0.35, 0.2])
    decay = 0.35 * n / sr / (1.0 + 0.8 * np.arange(ratios.size))
    out = np.zeros(n)
    for ratio, amp, tau in zip(ratios, amps, decay):
        if ratio * f < 0.45 * sr:
            out += amp * np.exp(-t / tau) * np.sin(2 * np.pi * ratio * f * t)
    return out


def _buzz(rng, n, sr, f, r):
    k = np.arange(1, _max_harmonics(f, sr, 30) + 1)
    phase = 2 * np.pi * f * _time(n, sr)
    return _harmonic_sum(phase, 1.0 / k) * (1.0 + 0.1 * np.sin(2 * np.pi * 7.0 * _time(n, sr)))


def _knock(rng, n, sr, f, r):
    k = _time(int(0.08 * sr), sr)
    fr = rng.uniform(350.0, 700.0)
    kernel = np.exp(-k / 0.025) * np.sin(2 * np.pi * fr * k) + 0.5 * rng.standard_normal(k.size) * np.exp(-k / 0.004)
    times = _regular_times(rng, n, sr, r, 0.1)
    return _place(kernel, times, rng.uniform(0.7, 1.0, times.size), n, sr)


def _siren(rng, n, sr, f, r):
    t = _time(n, sr)
    depth = 0.3
    phase = 2 * np.pi * f * (t - depth / (2 * np.pi * r) * np.cos(2 * np.pi * r * t))
    return np.sin(phase) + 0.3 * np.sin(2 * phase)


def _whistle(rng, n, sr, f, r):
    t = _time(n, sr)
    phase = 2 * np.pi * f * t + 0.015 * f / 5.0 * np.sin(2 * np.pi * 5.0 * t)
    breath = _band_noise(rng, n, sr, 0.8 * f, min(1.25 * f, 0.47 * sr))
    return np.sin(phase) + 0.15 * breath / (np.std(breath) + 1e-12)


def _hum(rng, n, sr, f, r):
    k = np.arange(1, _max_harmonics(f, sr, 12) + 1)
    weights = np.where(k % 2 == 1, 1.0, 0.5) / k**0.7
    return _harmonic_sum(2 * np.pi * f * _time(n, sr), weights)


def _drum(rng, n, sr, f, r):
    k = _time(int(0.35 * sr), sr)
    inst = f * (1.0 + 1.5 * np.exp(-k / 0.02))
    kernel = np.exp(-k / 0.12) * np.sin(2 * np.pi * np.cumsum(inst) / sr)
    times = _regular_times(rng, n, sr, r, 0.03)
    return _place(kernel, times, rng.uniform(0.8, 1.0, times.size), n, sr)


def _beep(rng, n, sr, f, r):
    t = _time(n, sr)
    k = np.arange(1, _max_harmonics(f, sr, 5) + 1)
    weights = np.where(k % 2 == 1, 1.0 / k, 0.0)  # square-ish: odd harmonics
    tone = _harmonic_sum(2 * np.pi * f * t, weights)
    gate = (np.mod(t * r, 1.0) < 0.5).astype(float)
    gate = np.convolve(gate, np.hanning(max(3, int(0.004 * sr))) / (0.002 * sr), mode="same")
    return tone * np.clip(gate, 0.0, 1.0)


_VOWEL_FORMANTS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [570, 840, 2410]], float)


def _vowel(rng, n, sr, f, r):
    t = _time(n, sr)
    k = np.arange(1, _max_harmonics(f, sr, 40) + 1)
    formants = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))]
    hz = k * f
    envelope = sum(w / (1.0 + ((hz - fo) / 100.0) ** 2) for w, fo in zip((1.0, 0.5, 0.25), formants))
    phase = 2 * np.pi * f * t + 0.02 * f / 5.0 * np.sin(2 * np.pi * 5.0 * t)
    return _harmonic_sum(phase, envelope / k**0.5)


def _bird(rng, n, sr, f, r):
    f = min(f, 0.42 * sr / 1.6)
    length = rng.uniform(0.05, 0.08)
    k = _time(int(length * sr), sr)
    inst = f * (1.0 + 0.6 * k / length)
    kernel = np.sin(np.pi * k / length) * np.sin(2 * np.pi * np.cumsum(inst) / sr)
    times = _regular_times(rng, n, sr, r, 0.15)
    return _place(kernel, times, rng.uniform(0.6, 1.0, times.size), n, sr)


# --------------------------------------------------------------------------- classes


@dataclass(frozen=True)
class _SoundClass:
    name: str
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]
    synth: Callable
    pitch_hz: tuple[float, float, float] | None = None  # low / mid / high base frequency
    rate_hz: tuple[float, float] | None = None  # slow / fast repetitions per second
    sustained: bool = True  # gets attack/release fades (percussive ones decay by themselves)


_C = _SoundClass
# name, caption nouns, caption verbs, synthesiser, pitch Hz (low/mid/high), rate Hz (slow/fast), sustained
_CLASSES: tuple[_SoundClass, ...] = (
    _C("Tone", ("tone", "pure tone", "steady tone"), ("sounds", "rings out", "plays"), _tone, (220, 550, 1400)),
    _C("Rising chirp", ("rising chirp", "upward sweep", "rising tone sweep"), ("rises", "glides up", "climbs"),
       partial(_sweep, up=True), (200, 450, 1000), (1.0, 4.0)),
    _C("Falling chirp", ("falling chirp", "downward sweep", "falling tone sweep"), ("falls", "glides down", "drops"),
       partial(_sweep, up=False), (200, 450, 1000), (1.0, 4.0)),
    _C("Rumble", ("rumble", "rumbling noise", "thunder-like rumble"), ("drones on", "roars"), _rumble),
    _C("Hiss", ("hiss", "hissing noise", "steam-like hiss"), ("sizzles", "whooshes"), _hiss),
    _C("Ticking", ("ticking", "clock-like ticking", "series of ticks"), ("goes on", "clicks away"), _ticking,
       None, (3.0, 9.0), False),
    _C("Crackle", ("crackling", "crackle", "rain-like crackling"), ("patters", "sputters"), _crackle,
       None, (12.0, 50.0), False),
    _C("Bell", ("bell", "bell chime", "ringing bell"), ("rings", "tolls"), _bell, (260, 520, 1040), None, False),
    _C("Buzz", ("buzz", "buzzing", "harsh buzz"), ("rasps", "drones"), _buzz, (80, 160, 320)),
    _C("Knock", ("knocking", "series of knocks", "wooden knocking"), ("taps", "raps"), _knock,
       None, (2.0, 6.0), False),
    _C("Siren", ("siren", "wailing siren", "warbling siren"), ("howls", "sounds"), _siren,
       (450, 800, 1400), (0.4, 2.5)),
    _C("Whistle", ("whistle", "whistling", "wavering whistle"), ("sounds", "rings out"), _whistle,
       (800, 1300, 2200)),
    _C("Hum", ("hum", "electrical hum", "humming"), ("drones", "resonates"), _hum, (50, 100, 150)),
    _C("Drum", ("drum", "drumbeat", "thumping drum"), ("thumps", "pounds"), _drum,
       (55, 95, 160), (1.5, 4.0), False),
    _C("Beep", ("beeping", "electronic beeping", "series of beeps"), ("bleeps", "sounds"), _beep,
       (500, 1000, 2000), (2.0, 6.0)),
    _C("Vowel", ("vowel sound", "voice-like drone", "sung vowel"), ("resonates", "rings out"), _vowel,
       (110, 200, 320)),
    _C("Bird chirp", ("bird-like chirping", "twittering", "chirping"), ("sings", "calls out"), _bird,
       (1800, 2600, 3400), (3.0, 8.0), False),
)
_BY_NAME = {c.name: c for c in _CLASSES}

#: Label names of the synthetic corpus, in class-index order (size SED heads with ``len``).
SYNTHETIC_CLASSES: list[str] = [c.name for c in _CLASSES]


@dataclass(frozen=True)
class ClipSpec:
    """What one clip holds: class ``label`` and its attributes (``None`` where the class
    has no such attribute). ``pitch`` ∈ PITCHES, ``rate`` ∈ RATES, ``loudness`` ∈
    LOUDNESSES, ``duration`` ∈ DURATIONS."""

    label: str
    pitch: str | None
    rate: str | None
    loudness: str
    duration: str


def draw_clip_spec(rng: np.random.Generator, label: str) -> ClipSpec:
    """Draw the attributes of a clip of class ``label`` uniformly."""
    cls = _sound_class(label)
    return ClipSpec(
        label=label,
        pitch=PITCHES[rng.integers(3)] if cls.pitch_hz else None,
        rate=RATES[rng.integers(2)] if cls.rate_hz else None,
        loudness=LOUDNESSES[rng.integers(2)],
        duration=DURATIONS[rng.integers(2)],
    )


def _sound_class(label: str) -> _SoundClass:
    if label not in _BY_NAME:
        raise ValueError(f"Unknown synthetic class {label!r}; choose one of SYNTHETIC_CLASSES: {SYNTHETIC_CLASSES}.")
    return _BY_NAME[label]


def _check_spec(spec: ClipSpec) -> _SoundClass:
    cls = _sound_class(spec.label)
    allowed = {
        "pitch": PITCHES if cls.pitch_hz else (None,),
        "rate": RATES if cls.rate_hz else (None,),
        "loudness": LOUDNESSES,
        "duration": DURATIONS,
    }
    for field, options in allowed.items():
        if getattr(spec, field) not in options:
            raise ValueError(f"{spec.label} clips take {field} in {options}, got {getattr(spec, field)!r}.")
    return cls


def synthesize_clip(
    spec: ClipSpec, *, clip_seconds: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Synthesise one clip.

    Returns:
        float32 array shaped (1, round(clip_seconds · sample_rate)): silence with the event
        (duration a fraction of the clip, random onset) peak-normalised to its loudness.
    """
    _check_audio_args(clip_seconds, sample_rate)
    cls = _check_spec(spec)
    clip_n = int(round(clip_seconds * sample_rate))
    fraction = rng.uniform(*_DURATION_FRACTION[spec.duration])
    n = min(clip_n, max(int(_MIN_EVENT_SECONDS * sample_rate), int(fraction * clip_n)))
    pitch = cls.pitch_hz[PITCHES.index(spec.pitch)] * rng.uniform(0.9, 1.1) if cls.pitch_hz else None
    rate = cls.rate_hz[RATES.index(spec.rate)] * rng.uniform(0.85, 1.15) if cls.rate_hz else None
    event = cls.synth(rng, n, sample_rate, pitch, rate)
    event = event * _fade(n, sample_rate, 0.02 if cls.sustained else 0.003)
    peak = np.max(np.abs(event))
    if not np.isfinite(peak) or peak == 0.0:
        raise RuntimeError(f"Synthesis of {spec} produced no signal; this is a bug in the synthesiser.")
    event *= rng.uniform(*_PEAK[spec.loudness]) / peak
    clip = np.zeros((1, clip_n), dtype=np.float32)
    onset = int(rng.integers(0, clip_n - n + 1))
    clip[0, onset : onset + n] = event
    return clip


# --------------------------------------------------------------------------- captions

_WORDS = {
    "pitch": {
        "low": ("low-pitched", "deep", "low"),
        "mid": ("mid-pitched", "medium-pitched"),
        "high": ("high-pitched", "shrill", "high"),
    },
    "rate": {"slow": ("slow", "slowly repeating", "unhurried"), "fast": ("fast", "rapid", "quick")},
    "loudness": {"soft": ("soft", "quiet", "faint"), "loud": ("loud", "strong", "intense")},
    "duration": {"short": ("short", "brief"), "long": ("long", "sustained", "prolonged")},
}
_ADVERBS = {
    "rate": {"slow": ("slowly", "at a slow pace"), "fast": ("quickly", "rapidly")},
    "loudness": {"soft": ("softly", "quietly", "faintly"), "loud": ("loudly", "powerfully")},
    "duration": {"short": ("briefly", "for a moment"), "long": ("for a long time", "for a while", "at length")},
}
_FOR_DURATION = {"short": ("for a moment", "for a short time", "for an instant"),
                 "long": ("for a long time", "for a while", "for a long stretch")}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def caption_for(spec: ClipSpec, rng: np.random.Generator) -> str:
    """A plain English sentence stating the class and all its attributes, ending with '.'.

    Several templates and synonyms keep captions varied; the sentence ends so that a
    spatial phrase can follow it ("... beeping" + " on the right side").
    """
    cls = _check_spec(spec)
    noun, verb = _pick(rng, cls.nouns), _pick(rng, cls.verbs)
    adj = {k: _pick(rng, _WORDS[k][getattr(spec, k)]) for k in _WORDS if getattr(spec, k) is not None}
    adv = {k: _pick(rng, _ADVERBS[k][getattr(spec, k)]) for k in _ADVERBS if getattr(spec, k) is not None}
    quality = " ".join(adj[k] for k in ("rate", "pitch") if k in adj)  # e.g. "fast high-pitched"
    core = f"{quality} {noun}".strip()
    template = int(rng.integers(4))
    if template == 0:
        text = _article(f"{adj['duration']}, {adj['loudness']} {core}")
    elif template == 1:
        text = "There is " + _article(f"{adj['loudness']}, {adj['duration']} {core}")
    elif template == 2:
        text = f"{_article(core)} {verb} {adv['loudness']} {_pick(rng, _FOR_DURATION[spec.duration])}"
    else:
        text = f"{_article(adj['loudness'] + ' ' + core)} is heard {adv['duration']}"
    return text[0].upper() + text[1:] + "."


# --------------------------------------------------------------------------- corpus


def _check_audio_args(clip_seconds: float, sample_rate: int) -> None:
    if int(sample_rate) != sample_rate or sample_rate < MIN_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be an integer ≥ {MIN_SAMPLE_RATE} Hz, got {sample_rate}.")
    if not clip_seconds >= 4 * _MIN_EVENT_SECONDS:
        raise ValueError(f"clip_seconds must be ≥ {4 * _MIN_EVENT_SECONDS} s, got {clip_seconds}.")


def _class_order(n: int, seed: int, split_code: int) -> np.ndarray:
    """Balanced class indices: consecutive random permutations of all classes."""
    rng = np.random.default_rng([seed, split_code])
    blocks = -(-n // len(_CLASSES))
    return np.concatenate([rng.permutation(len(_CLASSES)) for _ in range(blocks)])[:n] if n else np.zeros(0, int)


def generate_clips(
    n: int, *, split: str, clip_seconds: float = 4.0, sample_rate: int = 16000, seed: int = 0
) -> Iterator[tuple[str, np.ndarray, str, ClipSpec]]:
    """Yield ``(id, audio (1, samples) float32, caption, spec)`` for ``n`` clips of ``split``.

    Classes are balanced (every class appears once per consecutive block of
    ``len(SYNTHETIC_CLASSES)`` clips); clip ``i`` depends only on ``(seed, split, i)``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    code = SPLITS.index(split)
    for i, class_index in enumerate(_class_order(n, seed, code)):
        rng = np.random.default_rng([seed, code, i])
        spec = draw_clip_spec(rng, _CLASSES[class_index].name)
        audio = synthesize_clip(spec, clip_seconds=clip_seconds, sample_rate=sample_rate, rng=rng)
        yield f"synthetic-{split}-{i:06d}", audio, caption_for(spec, rng), spec


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """(channels, samples) float32 in [-1, 1] → 16-bit PCM WAV bytes (what ``Audio()`` stores).

    scipy writes the WAV ~20× faster than the encoder ``Audio.encode_example`` uses for arrays.
    """
    buffer = io.BytesIO()
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    scipy.io.wavfile.write(buffer, sample_rate, pcm.T if pcm.shape[0] > 1 else pcm[0])
    return buffer.getvalue()


def _examples(n: int, split: str, clip_seconds: float, sample_rate: int, seed: int) -> Iterator[dict]:
    for clip_id, audio, caption, spec in generate_clips(
        n, split=split, clip_seconds=clip_seconds, sample_rate=sample_rate, seed=seed
    ):
        yield {
            "id": clip_id,
            "audio": {"bytes": _wav_bytes(audio, sample_rate), "path": None},
            "captions": [caption],
            "labels": [spec.label],
        }


def _generate_split(
    n: int, split: str, clip_seconds: float, sample_rate: int, seed: int, cache_dir: str, *, keep_in_memory: bool
) -> datasets.Dataset:
    if n == 0:  # from_generator cannot make an empty split
        return datasets.Dataset.from_dict({name: [] for name in SOURCE_FEATURES}, features=SOURCE_FEATURES, split=split)
    return datasets.Dataset.from_generator(
        _examples,
        features=SOURCE_FEATURES,
        gen_kwargs={"n": n, "split": split, "clip_seconds": clip_seconds, "sample_rate": sample_rate, "seed": seed},
        cache_dir=cache_dir,
        keep_in_memory=keep_in_memory,
        split=split,
    )


def make_synthetic_corpus(
    *,
    n_train: int,
    n_validation: int,
    n_test: int,
    clip_seconds: float = 4.0,
    sample_rate: int = 16000,
    seed: int = 0,
    output_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """Generate the synthetic corpus (``SOURCE_FEATURES``; splits train/validation/test).

    Audio is stored as 16-bit PCM WAV bytes in the ``Audio`` column. With
    ``output_dir`` the corpus is saved there together with ``synthetic_corpus.json`` (the
    parameters) and ``label_names.json`` (``SYNTHETIC_CLASSES``); a corpus already saved
    there with identical parameters is loaded instead of regenerated. Without it, the
    corpus is kept in memory.
    """
    counts = {"train": n_train, "validation": n_validation, "test": n_test}
    for split, n in counts.items():
        if int(n) != n or n < 0:
            raise ValueError(f"n_{split} must be a non-negative integer, got {n}.")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}.")
    _check_audio_args(clip_seconds, sample_rate)
    key = {"generator_version": GENERATOR_VERSION, **{f"n_{s}": int(n) for s, n in counts.items()},
           "clip_seconds": float(clip_seconds), "sample_rate": int(sample_rate), "seed": int(seed)}
    if output_dir is not None:
        cached = _load_cached(Path(output_dir), key)
        if cached is not None:
            return cached
        check_corpus_output_dir(Path(output_dir))
    with tempfile.TemporaryDirectory(prefix="synthetic-corpus-") as cache_dir:
        corpus = datasets.DatasetDict(
            {
                split: _generate_split(int(n), split, float(clip_seconds), int(sample_rate), int(seed),
                                       cache_dir, keep_in_memory=output_dir is None)
                for split, n in counts.items()
            }
        )
        logger.info("Generated the synthetic corpus (%s).", ", ".join(f"{s} {n}" for s, n in counts.items()))
        if output_dir is None:
            return corpus
        save_corpus(corpus, output_dir, label_names=SYNTHETIC_CLASSES)
    Path(output_dir, CACHE_KEY_FILE).write_text(json.dumps(key, indent=1))
    return load_corpus(output_dir)


def _load_cached(output_dir: Path, key: dict) -> datasets.DatasetDict | None:
    key_file = output_dir / CACHE_KEY_FILE
    if not key_file.is_file():
        return None
    saved = json.loads(key_file.read_text())
    if saved != key:
        changed = {k: (saved.get(k), v) for k, v in key.items() if saved.get(k) != v}
        logger.info("Regenerating the synthetic corpus in %s; parameters changed (old, new): %s", output_dir, changed)
        return None
    logger.info("Reusing the synthetic corpus in %s (same parameters).", output_dir)
    return load_corpus(output_dir)
