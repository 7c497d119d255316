"""``spatial-clap evaluate``: Table-1 evaluation of saved models on saved evaluation sets."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="Evaluate saved models: report.json, report.md (Table 1) and embeddings_pca.png.",
        description=(
            "Embed the evaluation sets with each model and write report.json, report.md and embeddings_pca.png."
        ),
    )
    parser.add_argument("--model", nargs="+", required=True, metavar="DIR", help="model directories (save_pretrained)")
    parser.add_argument(
        "--eval-data",
        required=True,
        metavar="DIR_OR_HUB_ID",
        help="evaluation sets: a make-eval-sets folder or the Hub dataset id it was pushed to",
    )
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="where the report and the figure go")
    parser.add_argument(
        "--batch-size", type=int, default=16, metavar="B", help="clips or captions per forward pass (default 16)"
    )
    parser.add_argument(
        "--names", nargs="+", metavar="NAME", help="one display name per model (default: directory names)"
    )
    parser.add_argument("--device", default="auto", help="torch device, or 'auto' for CUDA when available (default)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.runner import run_evaluation

    if args.batch_size < 1:
        raise SystemExit(f"--batch-size must be >= 1, got {args.batch_size}.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = run_evaluation(
        args.model, args.eval_data, args.output_dir, names=args.names, batch_size=args.batch_size, device=args.device
    )
    out = Path(args.output_dir)
    files = ", ".join(str(out / name) for name in ("report.json", "report.md", "embeddings_pca.png"))
    print(f"Wrote {files} ({len(report['rows'])} model(s)).")
    return 0
