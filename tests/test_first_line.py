"""How a foreign error enters a one-line message: ``errors.first_line`` and ``errors.warn``."""

from __future__ import annotations

import pytest

from tl_bench.errors import first_line, warn


def test_the_first_non_blank_line_only() -> None:
    err = RuntimeError("\n  disk I/O error\n[SQL: INSERT INTO trials ...]\n(Background on this error at ...)")
    assert first_line(err) == "disk I/O error"


def test_an_empty_message_gives_the_type_name() -> None:
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("  \n ")) == "OSError"


def test_the_cut_is_the_callers() -> None:
    err = ValueError("x" * 500)
    assert first_line(err) == "x" * 300
    assert first_line(err, 120) == "x" * 120
    assert first_line(err, 1000) == "x" * 500


def test_passwords_are_hidden_before_the_cut() -> None:
    # a cut inside the password must not leave its first characters behind
    url = "postgresql://ana:s3cretpassword@db.example:5432/optuna"
    err = ConnectionError(f"could not connect to {url}: timeout")
    assert first_line(err) == "could not connect to postgresql://ana:***@db.example:5432/optuna: timeout"
    short = first_line(err, len("could not connect to postgresql://ana:s3cr"))
    assert "s3cr" not in short and short.endswith("ana:***@")


def test_warn_writes_one_redacted_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    warn("the model of trial 3 was not kept", OSError("http://u:pw@host:5000 refused\nmore"))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "warning: the model of trial 3 was not kept: OSError: http://u:***@host:5000 refused\n"
