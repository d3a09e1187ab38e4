"""A ``ClassifierReport`` written as a folder of files, to be logged as one artifact directory."""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tl_bench.evaluation.report import ClassifierReport
from tl_bench.evaluation.report_pages import html_page, markdown_page

REPORT_FILES = ("confusion.csv", "confusion.png", "per_class.csv", "summary.json", "report.md", "report.html")
_ANNOTATED_CLASSES = 30  # counts are written in the cells up to this many classes
_LABELLED_CLASSES = 60  # class names on the axes up to this many


def write_report(report: ClassifierReport, folder: str | Path, *, about: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Write ``REPORT_FILES`` into ``folder`` (created if missing); returns file name -> path.

    ``summary.json`` holds ``report.summary`` (JSON null for a missing value), ``worst_pairs`` and
    ``about`` (what was evaluated: model, split, ...; also the pages' first table when given);
    ``report.md`` and ``report.html`` show every table, the HTML page with the image inline.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in REPORT_FILES}
    report.confusion_frame().to_csv(paths["confusion.csv"])
    report.per_class.to_csv(paths["per_class.csv"], index=False)
    png = confusion_png(report)
    paths["confusion.png"].write_bytes(png)
    summary = {**report.summary, "worst_pairs": report.worst_pairs.to_dict(orient="records"), "about": dict(about or {})}
    paths["summary.json"].write_text(json.dumps(_plain(summary), indent=2) + "\n", encoding="utf-8")
    paths["report.md"].write_text(markdown_page(report, about), encoding="utf-8")
    paths["report.html"].write_text(html_page(report, base64.b64encode(png).decode("ascii"), about), encoding="utf-8")
    return paths


def confusion_png(report: ClassifierReport) -> bytes:
    """The confusion matrix as a PNG: cells coloured by the share of the true class (row), counts
    written in them when there are few classes. Drawn on a bare Agg canvas, not pyplot, so no
    global figure state or display is involved. matplotlib comes with MLflow (not a dependency of
    its own here), so it is imported only when a report is drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(report.class_names)
    rows = report.confusion.sum(axis=1, keepdims=True)
    shares = np.divide(report.confusion, rows, out=np.zeros(report.confusion.shape), where=rows > 0)
    side = min(max(4.0, 0.4 * k + 2.0), 24.0)
    fig = Figure(figsize=(side + 1.5, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="share of true class")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix ({report.summary['n_images']} images, top-1 {report.summary['top1']:.4f})")
    if k <= _LABELLED_CLASSES:
        ax.set_xticks(range(k), report.class_names, rotation=90)
        ax.set_yticks(range(k), report.class_names)
    if k <= _ANNOTATED_CLASSES:
        for (i, j), count in np.ndenumerate(report.confusion):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                        color="white" if shares[i, j] > 0.5 else "black")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers and NaN as None, so ``json.dumps`` writes valid JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = ["REPORT_FILES", "confusion_png", "write_report"]
