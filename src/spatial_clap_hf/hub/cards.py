"""Model cards and Hub uploads for saved Spatial CLAP directories.

The card templates live in the top-level ``model_cards/`` folder, shipped with the package as
``spatial_clap_hf.model_cards``: ``spatial_clap.md`` (model cards, rendered here) and
``dataset_card.md`` (spatialized-dataset cards, rendered by ``data.dataset_card``).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from ..models.spatial_clap.configuration_spatial_clap import PIPELINE_TASK
from ..utils.report_metrics import REPORT_METRICS

__all__ = [
    "CARD_TAGS",
    "CARD_TEMPLATE",
    "EVAL_METRICS",
    "METRIC_CARD",
    "hub_ids",
    "push_to_hub",
    "render_model_card",
    "write_model_card",
]

_TEMPLATES = resources.files("spatial_clap_hf.model_cards")
#: The model card template (``model_cards/spatial_clap.md``, shipped with the package).
CARD_TEMPLATE = Path(str(_TEMPLATES.joinpath("spatial_clap.md")))
#: The card of the evaluate metric module (``model_cards/spatial_clap_metric.md``: README.md of a metric Space).
METRIC_CARD = Path(str(_TEMPLATES.joinpath("spatial_clap_metric.md")))

#: Tags of every Spatial CLAP model card.
CARD_TAGS = [
    "audio",
    "clap",
    "spatial-audio",
    "sound-event-localization",
    "zero-shot-audio-classification",
    "spatial_clap_hf",
]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_ids(references: Sequence[str | os.PathLike | None]) -> list[str]:
    """The references that name Hub repositories (``owner/name``, not an existing local path), in order, once each.

    Card metadata (``base_model``, ``datasets``) links Hub repositories; local directories have no
    place there (the card's training paragraph names them).
    """
    out: list[str] = []
    for ref in references:
        if ref is None:
            continue
        text = str(ref)
        if _HUB_ID.match(text) and not os.path.exists(text) and text not in out:
            out.append(text)
    return out

#: The report metrics shown in the card and its model-index: every R@1, accuracy and the probe error.
CARD_METRICS = tuple(
    m for m in REPORT_METRICS if m.key.startswith("r1_") or m.key.endswith("_accuracy") or m.key == "doa_probe_mae_deg"
)
#: report.json row keys of ``CARD_METRICS``, with readable names.
EVAL_METRICS: dict[str, str] = {m.key: m.name for m in CARD_METRICS}


def _results(row: Mapping[str, Any], dataset_name: str) -> tuple[list[EvalResult], str]:
    results, lines = [], ["| metric | value |", "|---|---|"]
    for metric in CARD_METRICS:
        key, name = metric.key, metric.name
        if key not in row:
            continue
        value = float(row[key])
        results.append(
            EvalResult(
                task_type=PIPELINE_TASK,
                task_name="Zero-shot spatial audio classification",
                dataset_type=dataset_name,
                dataset_name=dataset_name,
                metric_type=key,
                metric_name=name,
                metric_value=value,
            )
        )
        lines.append(f"| {name} | {100 * value:.2f} % |" if metric.kind == "pct" else f"| {name} | {value:.2f} |")
    return results, "\n".join(lines)


def render_model_card(
    config: Any,
    *,
    repo_id: str = "path/to/this/model",
    training_description: str = "See `training_config.json` in this repository.",
    eval_row: Mapping[str, Any] | None = None,
    eval_dataset: str = "spatialized evaluation set (test rooms)",
    base_model: Sequence[str] = (),
    datasets: Sequence[str] = (),
    language: Sequence[str] = ("en",),
) -> ModelCard:
    """Render the card of a ``SpatialClapConfig`` from ``model_cards/spatial_clap.md``.

    The metadata carries ``library_name`` (transformers), ``pipeline_tag`` (the checkpoint's own
    zero-shot spatial pipeline), ``license``, ``tags``, ``language``, and when given
    ``base_model`` (the pretrained towers, Hub ids) and ``datasets`` (Hub ids); ``eval_row`` is a
    row of ``report.json`` (see ``spatial_clap_hf.evaluation``), whose metrics become the card's
    table and its ``model-index``.
    """
    results, table = _results(eval_row, eval_dataset) if eval_row else ([], "")
    name = repo_id.rsplit("/", 1)[-1]
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        language=list(language) or None,
        tags=list(CARD_TAGS),
        pipeline_tag=PIPELINE_TASK,
        base_model=list(base_model) or None,
        datasets=list(datasets) or None,
        model_name=name,
        eval_results=results or None,
    )
    channels = config.spatial_config.num_channels if getattr(config, "spatial_config", None) is not None else 2
    return ModelCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        model_name=name,
        repo_id=repo_id,
        pipeline_tag=PIPELINE_TASK,
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
