"""Security defaults: the UI listens on loopback only, checkpoints and study files cannot run code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import typer

from tl_bench.cli import app
from tl_bench.errors import SpecError, WeightsError
from tl_bench.models import build_model
from tl_bench.models.weights import read_state_dict
from tl_bench.spec import load_spec
from tl_bench.report import ui_command


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a file appears if the pickle is ever executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


def test_a_pickle_checkpoint_with_code_is_refused_and_its_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    state = build_model("test_resnet", num_classes=3, img_size=16).backbone.model.state_dict()
    torch.save({"state_dict": state, "extra": Payload(marker)}, evil)

    with pytest.raises(WeightsError, match=r"evil\.pth' cannot be read"):
        read_state_dict(evil)
    with pytest.raises(WeightsError):
        build_model("test_resnet", num_classes=3, img_size=16, weights=str(evil))
    assert not marker.exists()

    # The payload is live: a full unpickle (never done by tl-bench) runs it.
    torch.load(evil, weights_only=False)["extra"].close()
    assert marker.exists()


def test_a_study_file_cannot_construct_python_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    spec = tmp_path / "study.yaml"
    spec.write_text(f'name: !!python/object/apply:builtins.open ["{marker}", "w"]\n')
    with pytest.raises(SpecError, match="study.yaml"):
        load_spec(spec)
    assert not marker.exists()


def test_ui_binds_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    """The command's default and the server command it builds; tests/test_ui.py checks the live socket."""
    ui = typer.main.get_command(app).commands["ui"]  # type: ignore[attr-defined]
    host = next(p for p in ui.params if p.name == "host")
    assert host.default == "127.0.0.1"
    command = ui_command(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert "0.0.0.0" not in command
