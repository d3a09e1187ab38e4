"""Finding the store a command reads: explicit URI, environment, the default file; never creating one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tl_bench.errors import StorageError
from tl_bench.tracking import (
    check_server,
    is_server,
    local_store_path,
    locate_store,
    read_runs,
    require_store,
    store_missing,
)


def test_locate_store_prefers_the_uri_then_the_environment_then_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(StorageError, match="--tracking-uri") as err:
        locate_store()
    assert err.value.accepted == ("--tracking-uri PATH_OR_URL, --spec PATH or the MLFLOW_TRACKING_URI environment "
                                  "variable")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert locate_store() == "http://127.0.0.1:1"
    assert locate_store("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "studies" / "runs").mkdir(parents=True)
    shutil.copyfile(mlflow_template, tmp_path / "studies" / "runs" / "mlflow.db")
    assert locate_store() == f"sqlite:///{tmp_path / 'studies' / 'runs' / 'mlflow.db'}"


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("sqlite:////data/runs/mlflow.db", "/data/runs/mlflow.db"),
        ("sqlite:///:memory:", None),
        ("file:///data/mlruns", "/data/mlruns"),
        ("/data/mlruns", "/data/mlruns"),
        ("http://127.0.0.1:5000", None),
        ("postgresql://u@db/mlflow", None),
    ],
)
def test_local_store_path(uri: str, path: str | None) -> None:
    assert local_store_path(uri) == (Path(path) if path else None)
    assert is_server(uri) == uri.startswith("http")


def test_a_missing_local_store_is_reported_never_created(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    assert store_missing(uri) and not store_missing("http://127.0.0.1:1")
    message = (f"no MLflow store at {tmp_path / 'none.db'}; accepted: the tracking URI of a store that studies wrote "
               "(run `tl-bench run SPEC` first, or pass --tracking-uri)")
    with pytest.raises(StorageError) as err:
        require_store(uri)
    assert str(err.value) == message
    with pytest.raises(StorageError, match="no MLflow store at"):
        read_runs(uri)
    assert not (tmp_path / "none.db").exists()


def test_a_server_that_does_not_answer_fails_at_once() -> None:
    with pytest.raises(StorageError, match=r"tracking server 'http://127\.0\.0\.1:1' does not answer") as err:
        check_server("http://127.0.0.1:1", timeout_s=2)
    assert err.value.accepted and err.value.accepted.startswith("the URL of a running `mlflow server`")
