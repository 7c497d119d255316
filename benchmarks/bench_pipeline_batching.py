"""Throughput of the zero-shot spatial pipeline at batch size 1 (baseline) and 8, in one run.

Scores the same clips against the same captions one at a time and in batches, checks that
both give the same scores (within 1e-4), and prints clips per second and the ratio. The
captions are encoded once per batch and the audio tower runs on the whole batch, so batching
pays most where the text tower is large or a GPU is used.

Run:  python benchmarks/bench_pipeline_batching.py [--model DIR | --preset tiny] [--clips 32 --seconds 4]
      [--batch 8 --repeats 5 --device cpu --threads N] [--remote]

``--model`` takes a saved checkpoint (e.g. runs/quickstart/model); without it a seeded random
``--preset`` model is saved to a temporary directory with a small caption tokenizer.
``--remote`` loads the pipeline from the checkpoint's own code (``trust_remote_code=True``)
instead of the package's classes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from transformers import pipeline

from spatial_clap_hf import (
    SpatialClapFeatureExtractor,
    SpatialClapProcessor,
    create_model,
    get_config,
    train_caption_tokenizer,
)
from spatial_clap_hf.inference import TASK, load_classifier

CAPTIONS = [
    "A dog is barking on the left side.",
    "A man is speaking in front.",
    "Rain falls on a tin roof in the front-right.",
    "A car engine idles on the right side.",
    "Birds chirp in the front-left.",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a saved Spatial CLAP checkpoint (default: a random --preset model)")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--clips", type=int, default=32, help="clips scored per timed call")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length in seconds")
    parser.add_argument("--batch", type=int, default=8, help="the batched run's batch_size")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per batch size, interleaved")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--remote", action="store_true", help="load the pipeline with trust_remote_code=True")
    return parser.parse_args()


def save_random_model(preset: str, directory: str) -> str:
    torch.manual_seed(0)
    config = get_config(preset)
    create_model(preset).eval().save_pretrained(directory)
    tokenizer = train_caption_tokenizer(CAPTIONS * 8, vocab_size=400, model_max_length=64)
    channels = config.spatial_config.num_channels if config.spatial_config is not None else 2
    extractor = SpatialClapFeatureExtractor(
        num_channels=channels, sampling_rate=config.sample_rate, max_length_s=config.max_length_s
    )
    SpatialClapProcessor(extractor, tokenizer).save_pretrained(directory)
    return directory


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        model_dir = args.model or save_random_model(args.preset, tmp)
        if args.remote:
            pipe = pipeline(TASK, model=model_dir, device=args.device, trust_remote_code=True)
        else:
            pipe = load_classifier(model_dir, device=args.device)
        rate, channels = pipe.sampling_rate, pipe.num_channels
        rng = np.random.default_rng(0)
        clips = [
            {
                "array": (0.1 * rng.standard_normal((channels, int(args.seconds * rate)))).astype(np.float32),
                "sampling_rate": rate,
            }
            for _ in range(args.clips)
        ]

        def run(batch_size: int):
            return pipe(clips, candidate_labels=CAPTIONS, batch_size=batch_size)

        one, many = run(1), run(args.batch)  # also the warm-up calls
        gap = max(
            abs(a["score"] - {s["label"]: s["score"] for s in m}[a["label"]]) for o, m in zip(one, many) for a in o
        )
        # Interleaved (1, B, 1, B, ...) after the warm-up calls above: on a shared machine both sizes see
        # the same load drift.
        times: dict[int, list[float]] = {1: [], args.batch: []}
        for _ in range(args.repeats):
            for size in times:
                start = time.perf_counter()
                run(size)
                times[size].append(time.perf_counter() - start)
        single_s, batched_s = statistics.median(times[1]), statistics.median(times[args.batch])
    print(
        f"model: {args.model or 'random ' + args.preset}, {'remote code' if args.remote else 'package'}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}; {args.clips} clips of {args.seconds} s, "
        f"{len(CAPTIONS)} captions"
    )
    print(f"batch_size=1 (baseline)   {args.clips / single_s:8.1f} clips/s")
    print(f"batch_size={args.batch:<14d} {args.clips / batched_s:8.1f} clips/s   ratio {single_s / batched_s:5.2f}x")
    print(f"largest score difference between the two: {gap:.1e}")


if __name__ == "__main__":
    main()
