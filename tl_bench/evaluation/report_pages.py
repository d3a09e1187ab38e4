"""The report as one page, in Markdown and in HTML: the same titled tables rendered twice.

MLflow's artifact viewer renders ``.md`` files and shows ``.html`` files in a sandboxed frame
that cannot follow links to sibling artifacts, so the HTML page carries its confusion image inline
(a ``data:`` URI) and needs no download.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from tl_bench.evaluation.report import ClassifierReport

MAX_CONFUSION_CLASSES = 20  # a wider confusion matrix is left to confusion.csv and confusion.png

_SUMMARY_LABELS = {
    "n_images": "Images", "n_classes": "Classes", "top1": "Top-1 accuracy", "top5": "Top-5 accuracy",
    "macro_precision": "Macro precision", "macro_recall": "Macro recall", "macro_f1": "Macro F1",
    "weighted_precision": "Weighted precision", "weighted_recall": "Weighted recall", "weighted_f1": "Weighted F1",
    "nll": "NLL", "ece": "ECE", "temperature": "Temperature", "nll_scaled": "NLL after temperature scaling",
    "ece_scaled": "ECE after temperature scaling", "ece_bins": "ECE confidence bins",
    "temperature_fit_on": "Temperature fitted on",
}


@dataclass(frozen=True)
class Section:
    title: str
    table: pd.DataFrame
    note: str = ""


def sections(report: ClassifierReport, about: Mapping[str, str] | None = None) -> list[Section]:
    """The page's tables, in order: what was evaluated (``about``: model, split, ... when given),
    summary, per class, worst-confused pairs, confusion matrix."""
    head = [Section("Evaluated", pd.DataFrame({"": list(about), "value": list(about.values())}))] if about else []
    summary = pd.DataFrame({"metric": [_SUMMARY_LABELS.get(k, k) for k in report.summary],
                            "value": list(report.summary.values())})
    pairs = report.worst_pairs[["true_name", "predicted_name", "count", "rate"]].rename(
        columns={"true_name": "true class", "predicted_name": "predicted as", "rate": "share of true class"})
    out = [*head, Section("Summary", summary),
           Section("Per class", report.per_class),
           Section("Worst-confused pairs", pairs, "" if len(pairs) else "No image was confused.")]
    if len(report.class_names) <= MAX_CONFUSION_CLASSES:
        out.append(Section("Confusion matrix", report.confusion_frame().reset_index(),
                           "Rows are true classes, columns predicted classes."))
    else:
        out.append(Section("Confusion matrix", pd.DataFrame(),
                           f"{len(report.class_names)} classes: see confusion.csv and confusion.png."))
    return out


def cell(value: object) -> str:
    """One number format for both pages: whole numbers as they are, fractions to four decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_page(report: ClassifierReport, about: Mapping[str, str] | None = None) -> str:
    parts = ["# Evaluation report", ""]
    for section in sections(report, about):
        parts += [f"## {section.title}", ""]
        if section.note:
            parts += [section.note, ""]
        if len(section.table.columns) and len(section.table):
            parts += [_markdown_table(section.table), ""]
    return "\n".join(parts)


def html_page(report: ClassifierReport, confusion_png_base64: str, about: Mapping[str, str] | None = None) -> str:
    body = []
    for section in sections(report, about):
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.note:
            body.append(f"<p>{html.escape(section.note)}</p>")
        if len(section.table.columns) and len(section.table):
            body.append(_html_table(section.table))
        if section.title == "Confusion matrix":
            body.append(f'<img alt="confusion matrix" src="data:image/png;base64,{confusion_png_base64}">')
    style = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1em}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Evaluation report</title>"
            f"<style>{style}</style></head><body><h1>Evaluation report</h1>{''.join(body)}</body></html>\n")


def _markdown_table(table: pd.DataFrame) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = [[escape(str(c)) for c in table.columns], ["---"] * len(table.columns)]
    rows += [[escape(cell(v)) for v in row] for row in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def _html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


__all__ = ["MAX_CONFUSION_CLASSES", "Section", "html_page", "markdown_page", "sections"]
