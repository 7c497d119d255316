"""``spatial-clap make-corpus``: generate the embedded synthetic source corpus (no download)."""

from __future__ import annotations

import argparse
import logging


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-corpus",
        help="Generate the synthetic captioned sound-event corpus (train/validation/test).",
        description=(
            "Generate procedurally synthesised, captioned, dry mono sound events and save them as a source corpus. "
            "An existing corpus generated with identical parameters in --output-dir is reused."
        ),
    )
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="where the corpus is saved (save_to_disk)")
    parser.add_argument("--n-train", type=int, default=2000, metavar="N", help="training clips (default 2000)")
    parser.add_argument("--n-validation", type=int, default=200, metavar="N", help="validation clips (default 200)")
    parser.add_argument("--n-test", type=int, default=200, metavar="N", help="test clips (default 200)")
    parser.add_argument(
        "--clip-seconds", type=float, default=4.0, metavar="S", help="clip length in seconds (default 4.0)"
    )
    parser.add_argument("--sample-rate", type=int, default=16000, metavar="HZ", help="sample rate in Hz (default 16000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import make_synthetic_corpus

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    corpus = make_synthetic_corpus(
        n_train=args.n_train,
        n_validation=args.n_validation,
        n_test=args.n_test,
        clip_seconds=args.clip_seconds,
        sample_rate=args.sample_rate,
        seed=args.seed,
        output_dir=args.output_dir,
    )
    sizes = ", ".join(f"{split} {len(ds)}" for split, ds in corpus.items())
    print(f"Synthetic corpus in {args.output_dir} ({sizes}).")
    return 0
