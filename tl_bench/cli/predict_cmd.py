"""``tl-bench predict MODEL IMAGE_OR_FOLDER``: class names and probabilities for image files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tl_bench.cli.app import app
from tl_bench.cli.leaderboard_cmd import _SPEC, _URI, _store
from tl_bench.errors import DatasetError, ModelNotFoundError, first_line

CHUNK = 64  # files read and classified together
IMAGES_WORDS = "an image file (PNG, JPEG, ...) or a folder holding some"


def image_files(path: Path) -> list[Path]:
    """``path`` itself, or every visible file below it (sorted); which are images is found by reading them."""
    if not path.exists():
        raise DatasetError(f"{path} does not exist", IMAGES_WORDS)
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(path).parts))


def _chunks(items: list[Path]) -> Iterator[list[Path]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _reason(err: BaseException) -> str:
    text = first_line(err)
    return text.split(": ", 1)[1] if text.startswith("row ") and ": " in text else text


def classify(
    model: Any, files: list[Path], *, top_k: int, shown: dict[Path, str], temperature: float | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per readable image (file, then the top ``top_k`` classes and probabilities), and a
    line for each file that was skipped. With ``temperature`` the probabilities are those of the
    logits divided by it (``evaluation.rescale_probabilities``; the classes' order never changes)."""
    import pandas as pd

    from tl_bench.data.images import FileRefused, read_file_bytes
    from tl_bench.evaluation import rescale_probabilities

    class_names = list((model.metadata.metadata or {}).get("class_names") or [])
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []

    def predict(batch: list[tuple[Path, bytes]]) -> None:
        out = model.predict(pd.DataFrame({"image": [data for _, data in batch]}))
        for (path, _), (_, pred) in zip(batch, out.iterrows()):
            row: dict[str, Any] = {"file": shown[path]}
            probs = list(pred["probabilities"]) if class_names else [float(pred["probability"])]
            if temperature is not None and class_names:
                probs = rescale_probabilities([probs], temperature)[0].tolist()
            order = sorted(range(len(probs)), key=lambda i: -probs[i])[:top_k]
            for rank, index in enumerate(order, start=1):
                row[f"label_{rank}"] = class_names[index] if class_names else str(pred["label"])
                row[f"probability_{rank}"] = float(probs[index])
            rows.append(row)

    for chunk in _chunks(files):
        batch = []
        for path in chunk:
            try:
                batch.append((path, read_file_bytes(path)))  # a regular file within the size bound, as training reads
            except FileRefused as err:
                skipped.append(f"skipped {shown[path]}: {err}")
            except OSError as err:
                skipped.append(f"skipped {shown[path]}: cannot be read ({err.strerror})")
        try:
            predict(batch)
        except Exception:  # a file in the chunk is no image: find which, one at a time
            for item in batch:
                try:
                    predict([item])
                except Exception as err:
                    skipped.append(f"skipped {shown[item[0]]}: {_reason(err)}")
    return rows, skipped


def _temperature(tracking_uri: str | None, model: str) -> float:
    """The temperature stored with a model in a store; ModelNotFoundError in one line when it has none."""
    from tl_bench.tracking.evaluation_record import stored_temperature

    found = stored_temperature(tracking_uri, model) if tracking_uri is not None else None
    if found is None:
        raise ModelNotFoundError(f"--calibrated: {model!r} has no stored temperature",
                                 "a registered version: its evaluation report fits one on validation", lead="; use ")
    return found


@app.command("predict")
def predict_command(
    model: str = typer.Argument(..., metavar="MODEL", help="models:/NAME@champion, models:/NAME/VERSION, "
                                                         "runs:/RUN_ID/model, or a folder written by tl-bench export."),
    images: Path = typer.Argument(..., metavar="IMAGES",
                                  help="An image file, or a folder of them (searched recursively)."),
    spec: Optional[Path] = _SPEC,
    tracking_uri: Optional[str] = _URI,
    top_k: int = typer.Option(3, "--top-k", min=1, help="Classes shown per image, most probable first."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the rows to this CSV file."),
    calibrated: bool = typer.Option(False, "--calibrated", help="Probabilities scaled by the temperature stored "
                                    "with the model (fitted on validation when its evaluation report was made)."),
) -> None:
    """Classify images with a kept or registered model; files that are not images are skipped, each with a line."""
    from tl_bench.tracking import require_store
    from tl_bench.tracking.loading import MODEL_WORDS, load_model

    uri = None
    if model.startswith(("models:/", "runs:/")):
        uri, _, _ = _store(tracking_uri, spec)
        require_store(uri)
    elif not Path(model).is_dir():
        raise ModelNotFoundError(f"no model folder {model!r}", MODEL_WORDS)
    if csv is not None:  # before any image is classified
        from tl_bench.report.export import check_output

        check_output(csv, "the predictions")
    temperature = _temperature(uri, model) if calibrated else None
    files = image_files(images)
    pyfunc = load_model(model, uri)
    base = images if images.is_dir() else images.parent
    shown = {path: str(path.relative_to(base)) if images.is_dir() else str(images) for path in files}
    rows, skipped = classify(pyfunc, files, top_k=top_k, shown=shown, temperature=temperature)
    err = Console(stderr=True)
    for line in skipped:
        err.print(line, soft_wrap=True, markup=False)
    if not rows:
        raise DatasetError(f"no readable image in {images}", IMAGES_WORDS)
    k = max(len([key for key in row if key.startswith("label_")]) for row in rows)
    table = Table("file", *[c for rank in range(1, k + 1) for c in (f"class {rank}", f"p {rank}")],
                  title=f"{model}: {len(rows)} images" + (f", {len(skipped)} skipped" if skipped else "")
                  + (f", calibrated (temperature {temperature:.3f})" if temperature is not None else ""))
    for row in rows:
        cells = [row["file"]]
        for rank in range(1, k + 1):
            cells += [str(row.get(f"label_{rank}", "")), f"{row.get(f'probability_{rank}', float('nan')):.4f}"]
        table.add_row(*cells)
    Console().print(table)
    if csv is not None:
        import pandas as pd

        from tl_bench.report.export import write_output

        write_output(csv, pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"), "the predictions")
        typer.echo(f"wrote {len(rows)} rows to {csv}", err=True)
