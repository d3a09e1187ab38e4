"""The MLflow pyfunc model of a kept trial: encoded images in, class names and probabilities out.

MLflow logs this file as a model from code: it is copied into the model folder
and run when the model loads, so it imports nothing of tl-bench (only mlflow,
torch, torchvision, PIL, numpy and pandas). The network is the model folder's
``network`` artifact, an MLflow PyTorch model saved as a ``torch.export``
program (no pickled code), which normalises uint8 pixels itself; the
``config`` artifact says how images were resized for training.

Input: a DataFrame with a binary column ``image`` (the bytes of any file PIL
reads: PNG, JPEG, ...; base64 in JSON, as the signature says). Output: one row
per image with ``label`` (the top class name), ``probability`` (its
probability), ``probabilities`` (every class) and ``classes`` (the class names,
in the order of ``probabilities``): each answer says which number is which class.

Decoding is the model folder's ``decoder`` artifact: ``tl_bench/data/decode.py`` as it was
when the model was logged, the very function its training data went through (16-bit
images, JPEG draft decoding, the pixel bound, the antialiased square resize). It imports
nothing of tl-bench, so this file still runs without tl-bench.

No ``from __future__ import annotations`` here: MLflow reads ``predict``'s
annotation at run time (``pd.DataFrame`` tells it not to infer a schema from it).
"""

import importlib.util
import json
import types
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel
from PIL import Image, UnidentifiedImageError

IMAGE_COLUMN = "image"
BATCH_SIZE = 64  # images decoded and classified together


def load_decoder(path: str) -> types.ModuleType:
    """The decoding module logged with the model, loaded from its file (not from any installed tl-bench)."""
    spec = importlib.util.spec_from_file_location("tl_bench_logged_decoder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_bytes(value: object, row: int) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        return value.tobytes()
    raise ValueError(f"row {row}: column {IMAGE_COLUMN!r} holds {type(value).__name__}, not the bytes of an image file")


class ImageClassifier(PythonModel):
    """Decode, resize, classify; the network and its class names come from the model's artifacts."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        import mlflow.pytorch

        self.network = mlflow.pytorch.load_model(context.artifacts["network"])
        self.decoder = load_decoder(context.artifacts["decoder"])
        card = json.loads(Path(context.artifacts["config"]).read_text())
        self.class_names = [str(name) for name in card["class_names"]]
        self.size = int(card["preprocessing"]["img_size"])
        self.interpolation = str(card["preprocessing"]["interpolation"])

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if IMAGE_COLUMN not in frame.columns:
            raise ValueError(f"no column {IMAGE_COLUMN!r}; columns: {list(frame.columns)}")
        values = list(frame[IMAGE_COLUMN])
        probabilities = []
        for start in range(0, len(values), BATCH_SIZE):
            images = []
            for row, value in enumerate(values[start : start + BATCH_SIZE], start=start):
                data = _as_bytes(value, row)
                try:
                    images.append(self.decoder.decode_bytes(data, self.size, self.interpolation))
                except UnidentifiedImageError:
                    raise ValueError(f"row {row}: not an image") from None
                except (self.decoder.ImageTooLarge, self.decoder.UnsupportedMode) as err:
                    raise ValueError(f"row {row}: {err}") from None
                except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
                    first = (str(err).splitlines() or [type(err).__name__])[0]
                    raise ValueError(f"row {row}: corrupt image ({first})") from None
            with torch.no_grad():
                probabilities.append(self.network(torch.stack(images)).float().numpy())
        probs = np.concatenate(probabilities) if probabilities else np.zeros((0, len(self.class_names)), np.float32)
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        return pd.DataFrame(
            {
                "label": [self.class_names[i] for i in top],
                "probability": [float(probs[n, i]) for n, i in enumerate(top)],
                "probabilities": [row.astype(np.float64).tolist() for row in probs],
                "classes": [list(self.class_names) for _ in range(len(probs))],
            }
        )


mlflow.models.set_model(ImageClassifier())
