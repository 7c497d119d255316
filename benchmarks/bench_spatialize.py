"""Throughput and size of ``spatial-clap spatialize`` on this machine.

Prints, from one run on the same corpus and RIR bank:
  1. scenes per second with one process and with K worker processes (``--num-proc``; median of
     ``--repeats`` builds each, every one from scratch: checking the clips, rendering, encoding,
     writing), and their ratio;
  2. bytes written per scene-second and per second of audio, and their ratio to raw 16-bit and float32
     stereo PCM (what the FLAC encoding saves).

The source clips are either the embedded synthetic corpus (events in silence: compresses well) or
white noise at −25 dBFS RMS (``--content noise``: as incompressible as audio of that level gets), so
the two runs bracket real recordings.

Run:  python benchmarks/bench_spatialize.py [--clips 48 --clip-seconds 10 --num-sources 1 2 --scl --workers 2 ...]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import scipy.io.wavfile

from spatial_clap_hf.data import SOURCE_FEATURES, make_synthetic_corpus, spatialize
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=48, help="train clips of the corpus (default 48)")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    parser.add_argument("--num-sources", type=int, nargs="+", default=[1, 2], help="sources per scene (default 1 2)")
    parser.add_argument("--scl", action="store_true", help="every assignment of a mixture as a row")
    parser.add_argument("--workers", type=int, default=2, help="K worker processes of the second run (default 2)")
    parser.add_argument("--bit-depth", type=int, choices=(16, 24), default=24, help="FLAC PCM bits (default 24)")
    parser.add_argument("--content", choices=("synthetic", "noise"), default="synthetic", help="source clips")
    parser.add_argument("--rooms", type=int, default=2, help="train rooms of the RIR bank (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, median reported (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def noise_corpus(n: int, seconds: float, seed: int) -> datasets.DatasetDict:
    """White noise at −25 dBFS RMS, one distinct caption and label per clip (16-bit WAV bytes)."""
    rng = np.random.default_rng(seed)
    rate, samples = 16000, int(seconds * 16000)
    rows = {"id": [], "audio": [], "captions": [], "labels": []}
    for i in range(n):
        buffer = io.BytesIO()
        pcm = np.clip(10 ** (-25 / 20) * rng.standard_normal(samples), -1, 1)
        scipy.io.wavfile.write(buffer, rate, (pcm * 32767).astype(np.int16))
        rows["id"].append(f"noise-{i}")
        rows["audio"].append({"bytes": buffer.getvalue(), "path": None})
        rows["captions"].append([f"Noise number {i}"])
        rows["labels"].append([f"noise {i % 10}"])
    split = datasets.Dataset.from_dict(rows, features=SOURCE_FEATURES)
    return datasets.DatasetDict({"train": split})


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-spatialize-") as tmp:
        root = Path(tmp)
        if args.content == "synthetic":
            corpus = make_synthetic_corpus(n_train=args.clips, n_validation=0, n_test=0, clip_seconds=args.clip_seconds,
                                           seed=args.seed, output_dir=root / "corpus")
        else:
            corpus = noise_corpus(args.clips, args.clip_seconds, args.seed)
        bank = RirBank.build(root / "rirs", RirBankConfig(max_rooms_per_split=args.rooms, azimuth_step_deg=10),
                             splits=["train"], num_workers=2, show_progress=False)
        common = dict(split="train", num_sources=args.num_sources, scl=args.scl, clip_seconds=args.clip_seconds,
                      bit_depth=args.bit_depth, seed=args.seed, show_progress=False)
        runs = {}
        for workers in (1, args.workers):
            times = []
            for repeat in range(args.repeats):  # each into a new folder: a rerun would reuse the finished part
                start = time.perf_counter()
                info = spatialize(corpus, bank, root / f"out-{workers}-{repeat}", num_proc=workers, **common)
                times.append(time.perf_counter() - start)
            runs[workers] = (statistics.median(times), info)
        seconds_1, info = runs[1]
        seconds_k, _ = runs[args.workers]
        scene_seconds = info.scenes * args.clip_seconds
        pcm16 = bank.num_channels * 2 * bank.sample_rate
        print(f"{args.content} clips of {args.clip_seconds:g} s; sources {args.num_sources}, SCL {args.scl}: "
              f"{info.scenes} scenes, {info.rows} rows, {info.audio_seconds:.0f} s of audio, {info.bytes / 1e6:.1f} MB")
        print(f"1 process:   {seconds_1:7.1f} s  {info.scenes / seconds_1:7.2f} scenes/s")
        print(f"{args.workers} processes: {seconds_k:7.1f} s  {info.scenes / seconds_k:7.2f} scenes/s"
              f"  ({seconds_1 / seconds_k:.2f}x one process)")
        per_audio = info.bytes / info.audio_seconds
        print(f"bytes per scene-second: {info.bytes / scene_seconds:,.0f}; per second of audio: {per_audio:,.0f} "
              f"= {per_audio / pcm16:.2f}x 16-bit PCM, {per_audio / (2 * pcm16):.2f}x float32 "
              f"({args.bit_depth}-bit FLAC, {info.clipped_rows} rows scaled to avoid clipping)")


if __name__ == "__main__":
    main()
