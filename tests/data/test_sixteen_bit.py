"""A logged model decodes image files with the very function its training data went through: 16-bit
PNGs scaled to 8 bits (not clipped to white), and images over Pillow's pixel bound refused in one line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tl_bench.config import TrialConfig
from tl_bench.data.decode import ImageTooLarge, decode_bytes
from tl_bench.models import InferenceNetwork, build_model_for, save_bundle
from tl_bench.tracking import TRIAL, Tracker
from tl_bench.tracking.loading import load_model
from tl_bench.tracking.logged_models import log_trial_model

CONFIG = TrialConfig(dataset="digits", backbone="test_resnet", img_size=16, freeze_depth="all")
CLASSES = ["dark", "light"]


def sixteen_bit_png(seed: int) -> bytes:
    """A grey 16-bit PNG (mode I;16) whose values span the whole 16-bit range."""
    values = np.random.default_rng(seed).integers(0, 65536, (24, 20), dtype=np.uint16)
    image = Image.new("I;16", (20, 24))
    image.frombytes(values.astype("<u2").tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _eight_bit_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.transpose(1, 2, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def logged(mlflow_db: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A kept trial's model in a real MLflow store, loaded as MLflow serves it, and its network."""
    tracker = Tracker(mlflow_db, "demo")
    parent = tracker.create_parent_run(study="demo", dataset="digits", optuna_study="demo/digits")
    run_id = tracker.start_trial(parent, CONFIG, study="demo", dataset="digits", trial_number=0)
    torch.manual_seed(0)
    model = build_model_for(CONFIG, len(CLASSES)).eval()
    bundle = save_bundle(model, tmp_path / "bundle", config=CONFIG, class_names=CLASSES, interpolation="bilinear")
    network = InferenceNetwork(model, model.backbone.data_config["mean"], model.backbone.data_config["std"]).eval()
    pixels = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    tags = {"tlb.optuna_study": "demo/digits", "tlb.study": "demo", "tlb.dataset": "digits", TRIAL: "0"}
    log_trial_model(tracker.tracking_uri, tracker.experiment_id, run_id, network=network, bundle_dir=bundle,
                    pixels=pixels.numpy(), encoded=[_eight_bit_png(p) for p in pixels.numpy()], tags=tags,
                    params={"backbone": "test_resnet"})
    tracker.finish_trial(run_id, "COMPLETE", config=CONFIG)
    return load_model(f"runs:/{run_id}/model", mlflow_db), network


def test_training_scales_sixteen_bit_to_eight_bit() -> None:
    data = sixteen_bit_png(0)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.mode == "I;16"
        expected = np.asarray(opened, dtype=np.float64).mean() / 257  # 65535 -> 255
    decoded = decode_bytes(data, 24, "bilinear")  # no resize across the height: the mean is kept
    assert decoded.float().mean().item() == pytest.approx(expected, abs=3)


def test_a_logged_model_sees_sixteen_bit_pngs_as_training_did(logged) -> None:  # type: ignore[no-untyped-def]
    pyfunc, network = logged
    encoded = [sixteen_bit_png(seed) for seed in range(3)]
    out = pyfunc.predict(pd.DataFrame({"image": encoded}))
    with torch.no_grad():
        expected = network(torch.stack([decode_bytes(data, 16, "bilinear") for data in encoded]))
    assert np.array_equal(np.array(out["probabilities"].tolist(), dtype=np.float32), expected.numpy())


def test_a_logged_model_refuses_a_giant_image_in_one_line(  # type: ignore[no-untyped-def]
    logged, files, tmp_path: Path
) -> None:
    pyfunc, _ = logged
    data = files.write_giant_png(tmp_path / "giant.png").read_bytes()
    with pytest.raises(ImageTooLarge):
        decode_bytes(data, 16, "bilinear")
    with pytest.raises(ValueError) as caught:
        pyfunc.predict(pd.DataFrame({"image": [data]}))
    assert str(caught.value) == ("row 0: image too large (12000x12000 = 144,000,000 pixels; at most 89,478,485 are "
                                 "decoded, PIL.Image.MAX_IMAGE_PIXELS)")
