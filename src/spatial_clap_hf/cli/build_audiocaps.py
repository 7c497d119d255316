"""``spatial-clap build-audiocaps``: build the AudioCaps source corpus from a local copy."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-audiocaps",
        help="Build the AudioCaps source corpus (train/validation/test) from a local AudioCaps copy.",
        description=(
            "Read train.csv/val.csv/test.csv and the clips under <audiocaps-dir>/audio/, join AudioSet labels "
            "when --audioset-dir is given, and save the corpus (plus skipped.json and label_names.json)."
        ),
    )
    parser.add_argument("--audiocaps-dir", required=True, metavar="DIR", help="AudioCaps folder: the CSVs and audio/")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="where the corpus is saved (save_to_disk)")
    parser.add_argument(
        "--audioset-dir", metavar="DIR", help="folder with class_labels_indices.csv and the AudioSet segment CSVs"
    )
    parser.add_argument("--num-proc", type=int, metavar="N", help="worker processes for the decode check")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.audiocaps import build_audiocaps

    if args.num_proc is not None and args.num_proc < 1:
        raise SystemExit(f"--num-proc must be >= 1, got {args.num_proc}.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    corpus = build_audiocaps(
        args.audiocaps_dir, args.output_dir, audioset_dir=args.audioset_dir, num_proc=args.num_proc
    )
    sizes = ", ".join(f"{split} {len(ds)}" for split, ds in corpus.items())
    report = Path(args.output_dir) / "skipped.json"
    print(f"Saved AudioCaps corpus to {args.output_dir} ({sizes}); skipped clips listed in {report}.")
    return 0
