"""``spatial-clap make-eval-sets``: spatialize test (and validation) clips into the evaluation sets."""

from __future__ import annotations

import argparse
import logging


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-eval-sets",
        help="Build the evaluation sets (doa, doa_val, assignment2, assignment3, retrieval).",
        description=(
            "Spatialize clips of a source corpus with RIRs of held-out rooms (fixed seed) into one spatialized "
            "dataset with a config per evaluation set (the schema of `spatial-clap spatialize`: Parquet shards "
            "and a dataset card) under --output-dir. Complete sets with the same parameters are reused; an "
            "interrupted build resumes."
        ),
    )
    parser.add_argument(
        "--corpus", required=True, metavar="DIR_OR_HUB_ID", help="source corpus (make-corpus, build-audiocaps, or a Hub id)"
    )
    parser.add_argument("--rirs", required=True, metavar="DIR", help="RIR bank with val and test splits (make-rirs)")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="where the sets are saved")
    parser.add_argument("--n-doa", type=int, default=500, metavar="N", help="doa rows (default 500)")
    parser.add_argument("--n-doa-val", type=int, default=None, metavar="N", help="doa_val rows (default: --n-doa)")
    parser.add_argument("--n-assignment2", type=int, default=500, metavar="N", help="assignment2 rows (default 500)")
    parser.add_argument("--n-assignment3", type=int, default=500, metavar="N", help="assignment3 rows (default 500)")
    parser.add_argument("--n-retrieval", type=int, default=1000, metavar="N", help="retrieval rows (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every pairing (default 0)")
    parser.add_argument("--clip-seconds", type=float, default=10.0, metavar="S", help="clip length in s (default 10)")
    parser.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="clips and rooms of the sets: test (the report's, default) or validation (for choosing settings)",
    )
    parser.add_argument("--num-proc", type=int, default=1, metavar="P", help="worker processes (default 1)")
    parser.add_argument("--bit-depth", type=int, choices=(16, 24), default=24, help="PCM bits of the FLAC audio (default 24)")
    parser.add_argument("--device", default="cpu", help="torch device for the convolutions, with --num-proc 1 (default cpu)")
    parser.add_argument("--push-to-hub", metavar="USER/NAME", default=None, help="then upload the sets to this Hub dataset repository")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.audiocaps import load_corpus
    from ..data.eval_sets import build_eval_sets
    from ..data.spatialized import push_spatialized
    from ..spatial.rir_bank import RirBank

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        corpus = load_corpus(args.corpus)
        bank = RirBank.load(args.rirs)
        sets = build_eval_sets(
            corpus,
            bank,
            args.output_dir,
            n_doa=args.n_doa,
            n_doa_val=args.n_doa_val,
            n_assignment2=args.n_assignment2,
            n_assignment3=args.n_assignment3,
            n_retrieval=args.n_retrieval,
            seed=args.seed,
            clip_seconds=args.clip_seconds,
            split=args.split,
            bit_depth=args.bit_depth,
            num_proc=args.num_proc,
            device=args.device,
            corpus_name=args.corpus,
        )
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError) as err:
        raise SystemExit(f"make-eval-sets: {err}") from err
    print("Evaluation sets in " + args.output_dir + ": " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    if args.push_to_hub:
        print(f"Pushed to {push_spatialized(args.output_dir, args.push_to_hub)}")
    return 0
