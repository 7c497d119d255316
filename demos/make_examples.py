"""Generate the demo's example clips, deterministically.

Each example is one synthetic sound event of the embedded corpus generator
(``spatial_clap_hf.data.synthetic``), placed at a known azimuth in a test room of the
paper's grid with a simulated stereo RIR (pyroomacoustics, ``spatial.rir_bank``), 16 kHz,
16-bit stereo WAV (channel 0 = left). ``examples/examples.json`` lists the files with the
question the demo asks about them.

Usage: ``python demos/make_examples.py [--output-dir demos/examples]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import torch

from spatial_clap_hf.data.synthetic import ClipSpec, caption_for, synthesize_clip
from spatial_clap_hf.spatial.conventions import DEFAULT_PHRASES, doa_class
from spatial_clap_hf.spatial.rir_bank import simulate_rirs
from spatial_clap_hf.spatial.rooms import split_rooms
from spatial_clap_hf.spatial.spatializer import convolve

SAMPLE_RATE = 16000  # Hz
CLIP_SECONDS = 1.25
SEED = 0
PEAK = 0.8  # peak amplitude of the written clips

#: name, synthetic sound (class and attributes), azimuth in degrees, what the demo asks, candidate labels.
EXAMPLES: tuple[dict, ...] = (
    {
        "name": "bell_left",
        "spec": ClipSpec(label="Bell", pitch="mid", rate=None, loudness="loud", duration="long"),
        "azimuth_deg": 65.0,
        "description": "a ringing bell",
        "labels": "a ringing bell, a wailing siren, a thumping drum",
    },
    {
        "name": "siren_front_right",
        "spec": ClipSpec(label="Siren", pitch="mid", rate="fast", loudness="loud", duration="long"),
        "azimuth_deg": -30.0,
        "description": "a wailing siren",
        "labels": "a ringing bell, a wailing siren, a thumping drum",
    },
)


def render_example(index: int, example: dict) -> tuple[np.ndarray, str]:
    """The stereo clip (2, samples) float32 at ``SAMPLE_RATE`` Hz and its source caption."""
    rng = np.random.default_rng([SEED, index])
    source = synthesize_clip(example["spec"], clip_seconds=CLIP_SECONDS, sample_rate=SAMPLE_RATE, rng=rng)
    caption = caption_for(example["spec"], rng)
    room = split_rooms(seed=SEED)["test"][0]
    rir = simulate_rirs(room, [example["azimuth_deg"]], sample_rate=SAMPLE_RATE)[0]
    stereo = convolve(torch.from_numpy(source), torch.from_numpy(rir)[None])[0].numpy()
    return (stereo * (PEAK / np.abs(stereo).max())).astype(np.float32), caption


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """(channels, samples) float32 in [-1, 1] → 16-bit PCM WAV."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    scipy.io.wavfile.write(path, sample_rate, pcm.T)


def make_examples(output_dir: str | Path) -> list[Path]:
    """Write every example WAV and ``examples.json`` into ``output_dir``; return the WAV paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, index = [], []
    for i, example in enumerate(EXAMPLES):
        audio, caption = render_example(i, example)
        path = out / f"{example['name']}.wav"
        write_wav(path, audio, SAMPLE_RATE)
        paths.append(path)
        index.append(
            {
                "file": path.name,
                "description": example["description"],
                "labels": example["labels"],
                "azimuth_deg": example["azimuth_deg"],
                "direction": DEFAULT_PHRASES.phrases[doa_class(example["azimuth_deg"])],
                "source_caption": caption,
                "sample_rate": SAMPLE_RATE,
            }
        )
    (out / "examples.json").write_text(json.dumps(index, indent=2) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(Path(__file__).parent / "examples"), help="where to write")
    args = parser.parse_args()
    for path in make_examples(args.output_dir):
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
