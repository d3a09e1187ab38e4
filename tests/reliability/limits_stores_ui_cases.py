"""More of the bad-input catalogue in ``test_bad_input``: study files past their size and depth limits,
command-line mistakes, tracking stores that cannot be used, and the UI and dashboard commands.

Each setup writes its files into a folder holding the spec's default stores and returns the command
line; the catalogue runs it and checks exit code 2, one line, and stores unchanged.
"""

from __future__ import annotations

import socket
from pathlib import Path

from reliability_support import Case, spec_data, write_spec

# Sockets that listen but never answer, kept open until the test process ends.
_SILENT: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port nothing listens on (the OS hands out a free one; it is closed again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def silent_port() -> int:
    """A loopback port that accepts connections and never answers (a hung server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    _SILENT.append(sock)
    return int(sock.getsockname()[1])


def _store(folder: Path) -> str:
    return f"sqlite:///{folder / 'runs' / 'mlflow.db'}"


def yaml_alias_bomb(folder: Path) -> list[str]:
    # 9 levels of 9 aliases: 342 bytes that expand to 9^9 (387 million) strings.
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    (folder / "study.yaml").write_text("\n".join(lines) + "\n")
    return ["run", "study.yaml"]


def yaml_nested_too_deep(folder: Path) -> list[str]:
    (folder / "study.yaml").write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    return ["run", "study.yaml"]


def yaml_too_large(folder: Path) -> list[str]:
    (folder / "study.yaml").write_text("# padding\n" * 200_000 + "name: rel\n")
    return ["run", "study.yaml"]


def option_out_of_range(folder: Path) -> list[str]:
    write_spec(folder)
    return ["run", "study.yaml", "--n-trials", "0"]


def option_unknown(folder: Path) -> list[str]:
    write_spec(folder)
    return ["run", "study.yaml", "--n-trial", "3"]


def tracking_scheme_unknown(folder: Path) -> list[str]:
    write_spec(folder)
    return ["run", "study.yaml", "--tracking-uri", "ftp://127.0.0.1/runs"]


def tracking_uri_folder(folder: Path) -> list[str]:
    write_spec(folder)
    (folder / "mlruns").mkdir()
    return ["run", "study.yaml", "--tracking-uri", "mlruns"]


def study_in_other_tracking_store(folder: Path) -> list[str]:
    # The study exists, recorded in the spec's store; the command names a new, empty one.
    import optuna

    from tl_bench.spec import load_spec
    from tl_bench.study.storage import PARENT_RUN, make_storage, open_study
    from tl_bench.tracking import Tracker

    spec = load_spec(write_spec(folder))
    study, _ = open_study(make_storage(spec.storage_url), spec.study_name(spec.datasets[0]), directions=["maximize"],
                          metric_names=["val_acc"], sampler=optuna.samplers.RandomSampler(),
                          pruner=optuna.pruners.NopPruner(), space_digest=spec.space_digest(), source=str(spec.source_path))
    tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location)
    study.set_user_attr(PARENT_RUN, tracker.create_parent_run(study=spec.name, dataset="digits",
                                                              optuna_study=study.study_name))
    return ["run", "study.yaml", "--tracking-uri", f"sqlite:///{folder / 'elsewhere' / 'mlflow.db'}"]


def mlflow_db_not_a_database(folder: Path) -> list[str]:
    write_spec(folder)
    (folder / "runs" / "mlflow.db").write_bytes(b"these are notes, not a database\n" * 20)
    return ["run", "study.yaml"]


def doctor_store_not_a_database(folder: Path) -> list[str]:
    mlflow_db_not_a_database(folder)
    return ["doctor", "study.yaml"]


def tracking_store_below_a_file(folder: Path) -> list[str]:
    write_spec(folder)
    (folder / "notes.txt").write_text("a file, not a folder\n")
    return ["run", "study.yaml", "--tracking-uri", f"sqlite:///{folder / 'notes.txt' / 'mlflow.db'}"]


def storage_below_a_file(folder: Path) -> list[str]:
    write_spec(folder)
    (folder / "notes.txt").write_text("a file, not a folder\n")
    return ["run", "study.yaml", "--storage", f"sqlite:///{folder / 'notes.txt' / 'optuna.db'}"]


def tracking_server_silent(folder: Path) -> list[str]:
    write_spec(folder)
    return ["run", "study.yaml", "--tracking-uri", f"http://127.0.0.1:{silent_port()}"]


def ui_server_unreachable(folder: Path) -> list[str]:
    return ["ui", "--tracking-uri", f"http://127.0.0.1:{closed_port()}"]


def ui_bad_host(folder: Path) -> list[str]:
    return ["ui", "--tracking-uri", _store(folder), "--host", "bad host!"]


def ui_host_not_here(folder: Path) -> list[str]:
    # An address of no interface here: binding it fails at once, and nothing is sent anywhere.
    return ["ui", "--tracking-uri", _store(folder), "--host", "192.0.2.1", "--port", "0"]


def dashboard_out_outside(folder: Path) -> list[str]:
    # A missing folder outside the working folder (the case's folder) is never created.
    return ["dashboard", "--tracking-uri", _store(folder), "--out", str(folder.parent / f"{folder.name}-no-such-dir" / "x.html")]


LIMITS_STORES_UI_CASES: dict[str, Case] = {
    "yaml_alias_bomb": Case(yaml_alias_bomb, r"study\.yaml: line \d+, column \d+: YAML aliases expand to over 100,000 values",
                            r"accepted: a study file of at most 100,000 values"),
    "yaml_nested_too_deep": Case(yaml_nested_too_deep, r"study\.yaml: line 1, column \d+: mappings and lists are nested over 32 deep",
                                 r"accepted: at most 32 levels"),
    "yaml_too_large": Case(yaml_too_large, r"study\.yaml: top level: the file is [\d,]+ bytes",
                           r"accepted: a study file of at most 1,000,000 bytes"),
    "option_out_of_range": Case(option_out_of_range, r"Invalid value for '--n-trials'", r"greater than or equal to 1 \(see tl-bench run --help\)"),
    "option_unknown": Case(option_unknown, r"No such option: --n-trial", r"did you mean '--n-trials'\?"),
    "tracking_scheme_unknown": Case(tracking_scheme_unknown, r"MLflow tracking URI 'ftp://127\.0\.0\.1/runs' has an unknown scheme 'ftp'",
                                    r"accepted: sqlite:///PATH"),
    "tracking_uri_folder": Case(tracking_uri_folder, r"tracking URI 'file://.*/mlruns' is a folder or plain path.*maintenance mode",
                                r"accepted: sqlite:///PATH"),
    "study_in_other_tracking_store": Case(study_in_other_tracking_store,
                                          r"study 'rel/digits' was recorded in another MLflow store: its run \w+ is not in 'sqlite:///.*elsewhere/mlflow\.db'",
                                          r"accepted: the --tracking-uri the study started with"),
    "mlflow_db_not_a_database": Case(mlflow_db_not_a_database, r"MLflow store '.*runs/mlflow\.db' is not an SQLite database",
                                     r"accepted: an SQLite store"),
    "doctor_store_not_a_database": Case(doctor_store_not_a_database, r"MLflow store '.*runs/mlflow\.db' is not an SQLite database",
                                        r"accepted: an SQLite store"),
    "tracking_store_below_a_file": Case(tracking_store_below_a_file, r"MLflow store '.*notes\.txt/mlflow\.db' cannot be created: .*notes\.txt is a file",
                                        r"accepted: a file path in a folder"),
    "storage_below_a_file": Case(storage_below_a_file, r"Optuna storage '.*notes\.txt/optuna\.db' cannot be created: .*notes\.txt is a file",
                                 r"accepted: a file path in a folder"),
    "tracking_server_silent": Case(tracking_server_silent, r"tracking server 'http://127\.0\.0\.1:\d+' does not answer \(ReadTimeout\)",
                                   r"accepted: the URL of a running"),
    "ui_server_unreachable": Case(ui_server_unreachable, r"tracking server 'http://127\.0\.0\.1:\d+' does not answer \(ConnectionError\)",
                                  r"accepted: the URL of a running"),
    "ui_bad_host": Case(ui_bad_host, r"--host 'bad host!' is not an IP address or host name", r"accepted: 127\.0\.0\.1 \(the default\), localhost"),
    "ui_host_not_here": Case(ui_host_not_here, r"cannot listen on 192\.0\.2\.1: it is not an address of this machine",
                             r"accepted: 127\.0\.0\.1 \(the default\)"),
    "dashboard_out_outside": Case(dashboard_out_outside, r"cannot write the dashboard to .*-no-such-dir/x\.html: folder .*-no-such-dir does not exist",
                                  r"accepted: a file path in an existing, writable folder"),
}
