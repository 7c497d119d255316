"""``spatial-clap spatialize``: render a corpus split into a spatialized dataset (Parquet shards + card)."""

from __future__ import annotations

import argparse
import logging

from ..spatial.rooms import SPLITS, canonical_split


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "spatialize",
        help="Spatialize a corpus split with the RIR bank's rooms of that split into Parquet shards with a card.",
        description=(
            "Draw scenes of 1, 2 or 3 sources from a source corpus split, place them in the RIR bank's rooms of that "
            "split and write them as a datasets dataset (FLAC audio in Parquet shards, README.md dataset card) that "
            "load_dataset reads without this package. Deterministic for a seed; resumes an interrupted run; a "
            "folder holding anything else, or a part built with other parameters, is refused."
        ),
    )
    add = parser.add_argument
    add("--corpus", required=True, metavar="DIR_OR_HUB_ID", help="source corpus (build-audiocaps, make-corpus, or a Hub id)")
    add("--rirs", required=True, metavar="DIR", help="RIR bank holding the split (make-rirs)")
    add("--split", required=True, type=canonical_split, choices=SPLITS, help="corpus split and rooms to use")
    add("--output-dir", required=True, metavar="DIR", help="dataset folder (new, empty, or one this command wrote)")
    add("--num-sources", type=int, nargs="+", default=[1], metavar="N",
        help="sources per scene; several share each draw's clips equally (1 2: half alone, half in pairs) (default 1)")
    add("--scl", action="store_true", help="write every mixture in all n! assignments of its directions (rows share scene_id)")
    add("--pairings", type=int, default=1, metavar="K", help="re-drawn pairings of train/validation as distinct rows (default 1)")
    add("--max-scenes", type=int, default=None, metavar="N", help="at most N scenes per pairing (default all)")
    add("--num-proc", type=int, default=1, metavar="P", help="worker processes (default 1)")
    add("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    add("--clip-seconds", type=float, default=10.0, metavar="S", help="clip length in s; clips are cut or zero-padded (default 10)")
    add("--bit-depth", type=int, choices=(16, 24), default=24, help="PCM bits of the FLAC audio (default 24)")
    add("--rows-per-shard", type=int, default=1000, metavar="R", help="rows per Parquet shard, whole scenes (default 1000)")
    add("--push-to-hub", metavar="USER/NAME", default=None, help="then upload it to this Hub dataset repository")
    add("--private", action="store_true", help="create the Hub repository private")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.audiocaps import load_corpus
    from ..data.audio_io import AudioDecodeError
    from ..data.spatialized import push_spatialized, spatialize
    from ..spatial.rir_bank import RirBank

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        bank = RirBank.load(args.rirs)
        corpus = load_corpus(args.corpus)
        info = spatialize(
            corpus,
            bank,
            args.output_dir,
            split=args.split,
            num_sources=args.num_sources,
            scl=args.scl,
            pairings=args.pairings,
            max_scenes=args.max_scenes,
            seed=args.seed,
            clip_seconds=args.clip_seconds,
            bit_depth=args.bit_depth,
            num_proc=args.num_proc,
            rows_per_shard=args.rows_per_shard,
            corpus_name=args.corpus,
        )
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError, AudioDecodeError) as err:
        raise SystemExit(f"spatialize: {err}") from err
    print(
        f"{info.split}: {info.rows} rows ({info.scenes} scenes, {info.shards} shards, {info.bytes / 1e6:.1f} MB) in "
        f"{args.output_dir}; {info.skipped_clips} source clips skipped"
    )
    if args.push_to_hub:
        from huggingface_hub.errors import HfHubHTTPError

        try:
            url = push_spatialized(args.output_dir, args.push_to_hub, private=args.private)
        except (HfHubHTTPError, OSError, ValueError) as err:
            raise SystemExit(
                f"spatialize: the dataset is complete in {args.output_dir}, but pushing it to {args.push_to_hub} "
                f"failed: {err}. Run the same command again to retry the upload."
            ) from err
        print(f"Pushed to {url}")
    return 0
