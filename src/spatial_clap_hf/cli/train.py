"""``spatial-clap pretrain-spatial`` (stage 1) and ``spatial-clap train`` (stage 2).

Both read a YAML preset (``recipes/*.yaml``), apply command-line overrides and call
``spatial_clap_hf.training.train``. Run them under ``accelerate launch`` for several
processes or GPUs; plain invocation runs one process.
"""

from __future__ import annotations

import argparse
import logging

import yaml


def _parse_set(values: list[str]) -> dict:
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE (e.g. optim.lr=3e-4), got {item!r}.")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML preset, e.g. recipes/tiny.yaml")
    parser.add_argument("--output-dir", help="where checkpoints, logs and the final model go")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    parser.add_argument("--push-to-hub", metavar="REPO", help="push the final model to this Hub repository")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (dotted key)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    pre = subparsers.add_parser("pretrain-spatial", help="stage 1: pretrain the SELDnet spatial encoder")
    _add_common(pre)
    pre.add_argument("--objective", choices=["seld", "doa"], help="pretraining objective (overrides the preset)")
    pre.set_defaults(func=_run, stage="spatial")
    main = subparsers.add_parser("train", help="stage 2: contrastive Spatial CLAP training")
    _add_common(main)
    main.add_argument(
        "--eval-data",
        metavar="DIR_OR_HUB_ID",
        help="evaluation sets (spatial-clap make-eval-sets, or their Hub id): evaluate the final model and put the "
        "results into its model card (model-index) before any push",
    )
    main.set_defaults(func=_run, stage="contrastive", objective=None)


def _run(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from ..hub import push_to_hub
    from ..training import load_config, train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = {"stage": args.stage, **_parse_set(args.set)}
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    if args.max_steps is not None:
        overrides["optim.max_steps"] = args.max_steps
    if args.objective:
        overrides["objective"] = args.objective
    if args.push_to_hub:
        overrides["push_to_hub"] = args.push_to_hub
    config = load_config(args.config, overrides)
    result = train(config, resume=args.resume, show_progress=not args.no_progress)
    if result.interrupted:
        print(f"Interrupted after step {result.steps}/{result.total_steps}; resume with --resume.")
        return 130
    if not PartialState().is_main_process:
        return 0
    print(f"Finished {result.steps} steps; model written to {result.model_dir}")
    if getattr(args, "eval_data", None):
        _evaluate_into_card(config, result.model_dir, args.eval_data)
    if config.push_to_hub and result.model_dir is not None:
        url = push_to_hub(result.model_dir, config.push_to_hub)
        print(f"Pushed to {url}")
    return 0


def _evaluate_into_card(config, model_dir, eval_dir) -> None:
    from ..evaluation import run_evaluation
    from ..hub import write_model_card
    from ..models.spatial_clap.configuration_spatial_clap import SpatialClapConfig
    from ..training.tasks import card_sources, describe_training

    output_dir = f"{config.output_dir}/eval"
    report = run_evaluation([model_dir], eval_dir, output_dir, names=[config.push_to_hub or "model"])
    write_model_card(
        model_dir,
        SpatialClapConfig.from_pretrained(model_dir),
        repo_id=config.push_to_hub or "path/to/this/model",
        training_description=describe_training(config),
        eval_row=report["rows"][0],
        **card_sources(config),
    )
    print(f"Evaluation written to {output_dir}; results added to {model_dir}/README.md")
