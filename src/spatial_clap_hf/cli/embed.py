"""``spatial-clap embed``: audio (and text) embeddings of a saved model into a Parquet file."""

from __future__ import annotations

import argparse
import logging
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="Write audio (and text) embeddings to a Parquet file for retrieval.",
        description=(
            "Embed audio files (any sample rate; resampled to the model's) and optional texts with a saved "
            "Spatial CLAP model. The Parquet file has columns source (path or text), kind ('audio'/'text') "
            "and embedding (float32, L2-normalised); reload it with datasets.Dataset.from_parquet."
        ),
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="audio files (wav/flac/mp3/ogg)")
    parser.add_argument("--model", required=True, metavar="DIR", help="model directory (save_pretrained)")
    parser.add_argument("--output", required=True, metavar="OUT", help="Parquet file to write")
    parser.add_argument("--text", action="append", default=[], metavar="CAPTION", help="a text to embed; repeatable")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="clips or texts per forward (default 8)")
    parser.add_argument("--device", default="auto", help="torch device, or 'auto' for CUDA when available (default)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference import AudioDecodeError, AudioFilesError, embed_files, write_embeddings
    from ..models.loading import load_model_and_processor

    if not args.files and not args.text:
        print("embed: error: nothing to embed; pass audio files and/or --text CAPTION.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="embed: %(levelname)s: %(message)s")
    try:
        model, processor = load_model_and_processor(args.model, args.device)
        dataset = embed_files(
            model, processor, args.files, args.text, batch_size=args.batch_size, device=model.device
        )
        out = write_embeddings(dataset, args.output)
    except AudioFilesError as err:
        for message in err.errors:
            print(f"embed: error: {message}", file=sys.stderr)
        return 1
    except (AudioDecodeError, ImportError, OSError, ValueError) as err:
        print(f"embed: error: {err}", file=sys.stderr)
        return 1
    dim = len(dataset[0]["embedding"])
    print(f"Wrote {out}: {len(args.files)} audio + {len(args.text)} text embeddings of dimension {dim}.")
    return 0
