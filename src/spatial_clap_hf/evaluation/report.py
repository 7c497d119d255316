"""The evaluation report: ``report.json`` (read by other tools) and ``report.md`` (Table 1).

``report.json`` has exactly this shape (fractions in [0, 1], similarities cosines in
[−1, 1], the probe error in degrees)::

    {"rows": [{"model": str, "spatial_encoder": "none"|"doa"|"seld", "scl": bool,
               "contrastive_steps": int|null, "started_from": str|null,
               "r1_a2t_sp_src": float, "r1_t2a_sp_src": float,
               "r1_a2t_src": float, "r1_t2a_src": float,
               "r5_a2t_sp_src": float, "r5_t2a_sp_src": float,
               "r10_a2t_sp_src": float, "r10_t2a_sp_src": float,
               "doa_accuracy": float, "assignment_accuracy": float,
               "assignment3_accuracy": float, "similarity_sp": float,
               "similarity_src": float, "doa_probe_mae_deg": float}],
     "n_retrieval": int, "n_doa": int, "n_assignment": int, "n_assignment3": int}

:func:`validate_report` checks it. ``contrastive_steps`` counts the contrastive optimizer steps behind a model's
weights, those of the model its training started from (``started_from``: a directory,
relative to the report's folder when inside it, or a Hub id) included; null where the
checkpoint does not record them. The markdown table has one row per model plus a
chance row (1/N retrieval, k/N for R@k, 1/K DoA, 1/2 and 1/6 assignment).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..models.spatial_clap.configuration_spatial_clap import SPATIAL_ENCODERS
from ..spatial.conventions import DEFAULT_PHRASES, num_doa_classes
from ..utils.report_metrics import REPORT_METRICS

__all__ = [
    "FRACTION_KEYS",
    "IDENTITY_KEYS",
    "ROW_KEYS",
    "SPATIAL_ENCODERS",
    "TOP_LEVEL_KEYS",
    "chance_row",
    "make_report",
    "render_markdown",
    "validate_report",
    "write_report",
]

#: Row values that are fractions in [0, 1].
FRACTION_KEYS: tuple[str, ...] = tuple(m.key for m in REPORT_METRICS if m.kind == "pct")
_SIMILARITY_KEYS = tuple(m.key for m in REPORT_METRICS if m.kind == "cos")
IDENTITY_KEYS: tuple[str, ...] = ("model", "spatial_encoder", "scl", "contrastive_steps", "started_from")
ROW_KEYS: tuple[str, ...] = (*IDENTITY_KEYS, *(m.key for m in REPORT_METRICS))
TOP_LEVEL_KEYS: tuple[str, ...] = ("rows", "n_retrieval", "n_doa", "n_assignment", "n_assignment3")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _validate_row(i: int, row: Any) -> None:
    if not isinstance(row, Mapping):
        raise ValueError(f"report rows[{i}] must be an object, got {type(row).__name__}.")
    missing = [k for k in ROW_KEYS if k not in row]
    extra = [k for k in row if k not in ROW_KEYS]
    if missing or extra:
        raise ValueError(f"report rows[{i}] keys are wrong: missing {missing}, unexpected {extra}.")
    if not isinstance(row["model"], str) or not row["model"]:
        raise ValueError(f"report rows[{i}].model must be a non-empty string.")
    if row["spatial_encoder"] not in SPATIAL_ENCODERS:
        raise ValueError(
            f"report rows[{i}].spatial_encoder is {row['spatial_encoder']!r}; expected one of {SPATIAL_ENCODERS}."
        )
    if not isinstance(row["scl"], bool):
        raise ValueError(f"report rows[{i}].scl must be a bool, got {row['scl']!r}.")
    if row["contrastive_steps"] is not None and not _is_count(row["contrastive_steps"]):
        raise ValueError(f"report rows[{i}].contrastive_steps must be a count or null, got {row['contrastive_steps']!r}.")
    if row["started_from"] is not None and (not isinstance(row["started_from"], str) or not row["started_from"]):
        raise ValueError(f"report rows[{i}].started_from must be a non-empty string or null, got {row['started_from']!r}.")
    for key in FRACTION_KEYS:
        if not _is_number(row[key]) or not 0.0 <= row[key] <= 1.0:
            raise ValueError(f"report rows[{i}].{key} must be a fraction in [0, 1], got {row[key]!r}.")
    for key in _SIMILARITY_KEYS:
        if not _is_number(row[key]) or not -1.0 - 1e-6 <= row[key] <= 1.0 + 1e-6:
            raise ValueError(f"report rows[{i}].{key} must be a cosine in [-1, 1], got {row[key]!r}.")
    if not _is_number(row["doa_probe_mae_deg"]) or not 0.0 <= row["doa_probe_mae_deg"] <= 180.0:
        raise ValueError(
            f"report rows[{i}].doa_probe_mae_deg must be degrees in [0, 180], got {row['doa_probe_mae_deg']!r}."
        )


def validate_report(report: Any) -> None:
    """Raise ValueError naming the first deviation from the ``report.json`` shape."""
    if not isinstance(report, Mapping):
        raise ValueError(f"A report must be an object, got {type(report).__name__}.")
    missing = [k for k in TOP_LEVEL_KEYS if k not in report]
    extra = [k for k in report if k not in TOP_LEVEL_KEYS]
    if missing or extra:
        raise ValueError(f"report keys are wrong: missing {missing}, unexpected {extra}.")
    if not isinstance(report["rows"], list) or not report["rows"]:
        raise ValueError("report.rows must be a non-empty list, one row per model.")
    for key in TOP_LEVEL_KEYS[1:]:
        if not _is_count(report[key]):
            raise ValueError(f"report.{key} must be a non-negative integer, got {report[key]!r}.")
    for i, row in enumerate(report["rows"]):
        _validate_row(i, row)


def make_report(
    rows: Sequence[Mapping[str, Any]], *, n_retrieval: int, n_doa: int, n_assignment: int, n_assignment3: int
) -> dict:
    """Assemble and validate a report from metric rows (keys :data:`ROW_KEYS`) and set sizes."""
    report = {
        "rows": [dict(row) for row in rows],
        "n_retrieval": int(n_retrieval),
        "n_doa": int(n_doa),
        "n_assignment": int(n_assignment),
        "n_assignment3": int(n_assignment3),
    }
    validate_report(report)
    return report


def chance_row(n_retrieval: int, n_doa_classes: int = num_doa_classes(DEFAULT_PHRASES)) -> dict[str, float | None]:
    """Chance levels: R@k = min(k/N, 1) for N retrieval clips, DoA 1/K, assignment 1/2! and 1/3!.

    Similarities and the probe error have no chance level here (``None``).
    """
    if n_retrieval < 1:
        raise ValueError(f"n_retrieval must be >= 1, got {n_retrieval}.")
    row: dict[str, float | None] = {}
    for k in (1, 5, 10):
        for key in FRACTION_KEYS:
            if key.startswith(f"r{k}_"):
                row[key] = min(k / n_retrieval, 1.0)
    row["doa_accuracy"] = 1.0 / n_doa_classes
    row["assignment_accuracy"] = 1.0 / math.factorial(2)
    row["assignment3_accuracy"] = 1.0 / math.factorial(3)
    row.update({"similarity_sp": None, "similarity_src": None, "doa_probe_mae_deg": None})
    return row


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100.0 * value:.2f}"
    if kind == "cos":
        return f"{value:.3f}"
    return f"{value:.1f}"


def render_markdown(report: Mapping[str, Any], n_doa_classes: int = num_doa_classes(DEFAULT_PHRASES)) -> str:
    """Table-1-style markdown: one row per model plus the chance row; accuracies in %."""
    validate_report(report)
    header = ["Model", "Spatial enc.", "SCL", "Steps", *(m.header for m in REPORT_METRICS)]
    lines = [
        "# Spatial CLAP evaluation",
        "",
        f"Retrieval clips N = {report['n_retrieval']}, DoA clips = {report['n_doa']}, "
        f"2-source assignment clips = {report['n_assignment']}, 3-source assignment clips = {report['n_assignment3']}.",
        "Recall, DoA and assignment accuracies in %; similarities are mean cosines of matched pairs; "
        "the probe MAE is the mean absolute folded-azimuth error of a linear probe (degrees); "
        "Steps counts the contrastive optimizer steps behind each model (those of the model it started from included).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * (1 + len(REPORT_METRICS))) + "|",
    ]
    for row in report["rows"]:
        steps = "–" if row["contrastive_steps"] is None else str(row["contrastive_steps"])
        cells = [row["model"], row["spatial_encoder"], "yes" if row["scl"] else "no", steps]
        cells += [_cell(row[m.key], m.kind) for m in REPORT_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    chance = chance_row(report["n_retrieval"], n_doa_classes)
    chance_cells = ["chance", "–", "–", "–", *(_cell(chance[m.key], m.kind) for m in REPORT_METRICS)]
    lines.append("| " + " | ".join(chance_cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: Mapping[str, Any], output_dir: str | Path) -> tuple[Path, Path]:
    """Validate and write ``report.json`` and ``report.md`` into ``output_dir``; returns both paths."""
    validate_report(report)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, md_path
