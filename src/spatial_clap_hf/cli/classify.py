"""``spatial-clap classify``: zero-shot labels, or "where is X?", for stereo audio files."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="Score audio files against candidate labels, or ask where a described sound is.",
        description=(
            "Zero-shot classification of audio files with a saved Spatial CLAP model. --labels ranks the "
            "given labels (used as captions, e.g. 'A dog barks on the left side.'); --where 'a dog barking' "
            "scores that sound in each of the five direction sectors (left to right). Files of any sample "
            "rate are resampled to the model's rate."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (wav/flac/mp3/ogg)")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--labels", nargs="+", metavar="LABEL", help="candidate labels or captions")
    query.add_argument("--where", metavar="DESCRIPTION", help="a sound to locate, e.g. 'a dog barking'")
    parser.add_argument("--model", required=True, metavar="DIR", help="model directory (save_pretrained) or Hub id")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--top-k", type=int, metavar="K", help="keep the K most likely labels or directions")
    parser.add_argument(
        "--hypothesis-template", default="{}", metavar="TEMPLATE", help="caption template for --labels (default '{}')"
    )
    parser.add_argument("--device", default="auto", help="torch device, or 'auto' for CUDA when available (default)")
    parser.set_defaults(func=run)


def _table(results, where: str | None) -> str:
    lines = []
    for result in results:
        lines.append(result.path if where is None else f'{result.path}: where is "{where}"?')
        width = max(len(s["label" if where is None else "direction"]) for s in result.scores)
        for s in result.scores:
            if where is None:
                lines.append(f"  {100 * s['score']:6.2f} %  {s['label']}")
            else:
                lines.append(f"  {100 * s['score']:6.2f} %  {s['direction']:<{width}}  ({s['azimuth_deg']:+.0f}°)")
    return "\n".join(lines)


def _json(results, where: str | None) -> str:
    rows = []
    for r in results:
        row = {"file": r.path, "sample_rate": r.sample_rate}
        if where is not None:
            row["where"] = where
        row["results"] = r.scores
        rows.append(row)
    return json.dumps(rows, indent=2, ensure_ascii=False)


def run(args: argparse.Namespace) -> int:
    from ..inference import AudioDecodeError, AudioFilesError, classify_files, load_classifier

    if args.top_k is not None and args.top_k < 1:
        print(f"classify: --top-k must be >= 1, got {args.top_k}.", file=sys.stderr)
        return 2
    try:
        classifier = load_classifier(args.model, device=args.device)
        results = classify_files(
            classifier,
            args.files,
            labels=args.labels,
            where=args.where,
            top_k=args.top_k,
            hypothesis_template=args.hypothesis_template,
        )
    except AudioFilesError as err:
        for message in err.errors:
            print(f"classify: error: {message}", file=sys.stderr)
        return 1
    except (AudioDecodeError, FileNotFoundError, OSError, ValueError) as err:
        print(f"classify: error: {err}", file=sys.stderr)
        return 1
    for r in results:
        if r.resampled:
            print(
                f"classify: note: '{r.path}' is {r.sample_rate} Hz audio; resampled to the model's "
                f"{classifier.sampling_rate} Hz.",
                file=sys.stderr,
            )
    print(_json(results, args.where) if args.json else _table(results, args.where))
    return 0
