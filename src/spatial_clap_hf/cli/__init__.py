"""The ``spatial-clap`` command: one entry point, one module per sub-command.

Each module in ``SUBCOMMANDS`` defines ``register(subparsers)`` which adds its parser
and sets ``func`` (called with the parsed namespace, returns an exit code). Sub-command
modules only parse arguments and call library functions.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# Sub-command modules, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "make_corpus", "build_audiocaps", "make_rirs", "spatialize", "make_eval_sets", "evaluate", "train", "quickstart",
    "classify", "embed",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spatial-clap",
        description="Spatial CLAP: spatially-aware audio-language models on Hugging Face.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
