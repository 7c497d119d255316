"""``spatial-clap quickstart``: the main job end to end on the embedded data (CPU, minutes)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="build data, pretrain, train the four Table-1 variants and evaluate them (CPU, ~15 min)",
    )
    parser.add_argument("--output-dir", default="runs/quickstart", help="where everything is written")
    parser.add_argument(
        "--recipe", default=None, metavar="YAML", help="the trainings to run (default: the packaged recipes/quickstart.yaml)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..evaluation.report import render_markdown
    from ..quickstart import QuickstartSettings, run_quickstart

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.output_dir)
    report = run_quickstart(out, QuickstartSettings(recipe=args.recipe))
    print("\n" + render_markdown(report))
    print(f"Report:            {out / 'report.json'}  and  {out / 'report.md'}")
    print(f"Embedding figure:  {out / 'embeddings_pca.png'}")
    print(f"Evaluation sets:   {out / 'eval'}")
    print(f"Final model:       {out / 'model'}  (AutoModel / AutoProcessor)")
    return 0
