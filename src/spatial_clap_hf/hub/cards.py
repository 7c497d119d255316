"""Model cards and Hub uploads for saved Spatial CLAP directories."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from ..utils.report_metrics import REPORT_METRICS

__all__ = ["CARD_TEMPLATE", "EVAL_METRICS", "push_to_hub", "render_model_card", "write_model_card"]

#: The model card template (``model_cards/spatial_clap.md``, shipped with the package).
CARD_TEMPLATE = Path(str(resources.files("spatial_clap_hf.model_cards").joinpath("spatial_clap.md")))

#: report.json row keys shown in the card and its model-index, with readable names.
EVAL_METRICS: dict[str, str] = {
    m.key: m.name
    for m in REPORT_METRICS
    if m.key.startswith("r1_") or m.key.endswith("_accuracy") or m.key == "doa_probe_mae_deg"
}


def _results(row: Mapping[str, Any], dataset_name: str) -> tuple[list[EvalResult], str]:
    results, lines = [], ["| metric | value |", "|---|---|"]
    for key, name in EVAL_METRICS.items():
        if key not in row:
            continue
        value = float(row[key])
        results.append(
            EvalResult(
                task_type="zero-shot-audio-classification",
                dataset_type=dataset_name,
                dataset_name=dataset_name,
                metric_type=key,
                metric_name=name,
                metric_value=value,
            )
        )
        lines.append(f"| {name} | {value:.2f} |" if key.endswith("_deg") else f"| {name} | {100 * value:.2f} % |")
    return results, "\n".join(lines)


def render_model_card(
    config: Any,
    *,
    repo_id: str = "path/to/this/model",
    training_description: str = "See `training_config.json` in this repository.",
    eval_row: Mapping[str, Any] | None = None,
    eval_dataset: str = "spatialized evaluation set (test rooms)",
) -> ModelCard:
    """Render the card of a ``SpatialClapConfig`` from ``model_cards/spatial_clap.md``.

    ``eval_row`` is a row of ``report.json`` (see ``spatial_clap_hf.evaluation``); its
    metrics become the card's table and its ``model-index``.
    """
    results, table = _results(eval_row, eval_dataset) if eval_row else ([], "")
    name = repo_id.rsplit("/", 1)[-1]
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        tags=["audio", "clap", "spatial-audio", "sound-event-localization", "spatial_clap_hf"],
        pipeline_tag="zero-shot-audio-classification",
        model_name=name,
        eval_results=results or None,
    )
    channels = config.spatial_config.num_channels if getattr(config, "spatial_config", None) is not None else 2
    return ModelCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        model_name=name,
        repo_id=repo_id,
        spatial_encoder=config.spatial_encoder,
        scl=bool(config.scl),
        num_channels=channels,
        sample_rate=config.sample_rate,
        max_length_s=config.max_length_s,
        projection_dim=config.projection_dim,
        training_description=training_description,
        results_table=table,
    )


def write_model_card(directory: str | os.PathLike, config: Any, **kwargs: Any) -> Path:
    """Render the card (see ``render_model_card``) into ``<directory>/README.md``."""
    path = Path(directory) / "README.md"
    render_model_card(config, **kwargs).save(path)
    return path


def push_to_hub(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    endpoint: str | None = None,
) -> str:
    """Upload a saved model directory to ``repo_id`` (created if needed); returns the repo URL.

    The token comes from ``token``, else ``HF_TOKEN`` or a prior ``hf auth login``;
    ``endpoint`` overrides the Hub address (``HF_ENDPOINT``).
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} holds no config.json: not a saved model directory.")
    if "/" not in repo_id:
        raise ValueError(f"Hub repository ids look like 'user/name'; got {repo_id!r}.")
    api = HfApi(token=token, endpoint=endpoint)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(directory), commit_message="Upload Spatial CLAP model")
    return str(url)
