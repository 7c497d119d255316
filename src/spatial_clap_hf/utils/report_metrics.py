"""The metrics of the evaluation report, defined once: ``report.json`` keys, ``report.md``
column headers, readable names (model cards, the Hub's model-index) and units."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REPORT_METRICS", "ReportMetric"]


@dataclass(frozen=True)
class ReportMetric:
    """One metric of a report row.

    ``kind``: ``"pct"`` a fraction in [0, 1] (shown in %), ``"cos"`` a mean cosine in
    [−1, 1], ``"deg"`` an angle error in degrees.
    """

    key: str
    header: str
    name: str
    kind: str


#: Every metric of a report row, in the paper's Table-1 order.
REPORT_METRICS: tuple[ReportMetric, ...] = (
    ReportMetric("r1_a2t_sp_src", "R@1 sp+src A2T", "R@1 audio→text (sp+src captions)", "pct"),
    ReportMetric("r1_t2a_sp_src", "R@1 sp+src T2A", "R@1 text→audio (sp+src captions)", "pct"),
    ReportMetric("r1_a2t_src", "R@1 src A2T", "R@1 audio→text (src captions)", "pct"),
    ReportMetric("r1_t2a_src", "R@1 src T2A", "R@1 text→audio (src captions)", "pct"),
    ReportMetric("r5_a2t_sp_src", "R@5 sp+src A2T", "R@5 audio→text (sp+src captions)", "pct"),
    ReportMetric("r5_t2a_sp_src", "R@5 sp+src T2A", "R@5 text→audio (sp+src captions)", "pct"),
    ReportMetric("r10_a2t_sp_src", "R@10 sp+src A2T", "R@10 audio→text (sp+src captions)", "pct"),
    ReportMetric("r10_t2a_sp_src", "R@10 sp+src T2A", "R@10 text→audio (sp+src captions)", "pct"),
    ReportMetric("doa_accuracy", "DoA", "DoA classification accuracy (5 classes)", "pct"),
    ReportMetric("assignment_accuracy", "Assign. 2 src", "Source–DoA assignment accuracy (2 sources)", "pct"),
    ReportMetric("assignment3_accuracy", "Assign. 3 src", "Source–DoA assignment accuracy (3 sources)", "pct"),
    ReportMetric("similarity_sp", "Sim. sp+src", "Mean cosine of matched pairs (sp+src captions)", "cos"),
    ReportMetric("similarity_src", "Sim. src", "Mean cosine of matched pairs (src captions)", "cos"),
    ReportMetric("doa_probe_mae_deg", "Probe MAE (°)", "Linear-probe DoA error (degrees)", "deg"),
)
