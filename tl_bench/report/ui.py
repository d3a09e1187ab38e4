"""The MLflow UI on a study's store: ``mlflow server`` as a child process, bound to loopback.

The server runs tl-bench's app (``tracking.ui_app``: MLflow's own plus one page),
so that every URL printed opens in MLflow's model-training view and stays there;
each study's URL opens its trials with the dataset, recipe and cost columns and
the charts of ``tracking.view``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Callable

from tl_bench.errors import TLBenchError
from tl_bench.redact import redact
from tl_bench.tracking import is_server, local_store_path, require_store
from tl_bench.tracking.ui_app import APP_NAME, open_route
from tl_bench.tracking.view import experiments_path, trial_views

LOOPBACK = "127.0.0.1"


HOSTS = "127.0.0.1 (the default), localhost, 0.0.0.0 (every interface) or another address of this machine"
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def check_host(host: str) -> None:
    """TLBenchError unless ``host`` is an IP address or a well-formed host name (checked before any lookup)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.match(host):
            raise TLBenchError(f"--host {host!r} is not an IP address or host name", HOSTS) from None


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback one (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with _bound(host, 0) as sock:
        return int(sock.getsockname()[1])


def check_port(host: str, port: int) -> None:
    with _bound(host, port):
        pass


@contextmanager
def _bound(host: str, port: int) -> Iterator[socket.socket]:
    """A socket bound to (host, port); each way that can fail is one TLBenchError line."""
    check_host(host)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as err:
        raise TLBenchError(f"--host {host!r} cannot be resolved ({err.strerror or err})", HOSTS) from None
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRNOTAVAIL:
                raise TLBenchError(f"cannot listen on {host}: it is not an address of this machine", HOSTS) from None
            raise TLBenchError(f"cannot listen on {host}:{port}: {err.strerror or err}",
                               "a free port (--port P, or --port 0 for any free one)") from None
        yield sock


def ui_command(
    tracking_uri: str,
    *,
    host: str = LOOPBACK,
    port: int = 5000,
    workers: int = 1,
    artifact_root: str | None = None,
) -> list[str]:
    """The ``mlflow server`` argument list for a store.

    A SQLite store keeps its artifacts in ``artifacts/`` beside the database (the
    layout studies use), so new experiments and uploads land there too; other
    stores keep MLflow's defaults unless ``artifact_root`` is given.
    """
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
               "--host", host, "--port", str(port), "--workers", str(workers)]
    if has_app():
        command += ["--app-name", APP_NAME]
    path = local_store_path(tracking_uri)
    if artifact_root is None and path is not None and tracking_uri.startswith("sqlite:///"):
        artifact_root = _beside(path)
    if artifact_root is not None:
        command += ["--default-artifact-root", artifact_root, "--artifacts-destination", artifact_root]
    return command


def has_app() -> bool:
    """Whether tl-bench's MLflow app is installed (the ``mlflow.app`` entry point of its package metadata)."""
    from importlib.metadata import entry_points

    return any(e.name == APP_NAME for e in entry_points(group="mlflow.app"))


def _beside(store: Path) -> str:
    return (store.absolute().parent / "artifacts").as_uri()


def ui_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def serve_ui(
    tracking_uri: str,
    *,
    host: str = LOOPBACK,
    port: int = 5000,
    workers: int = 1,
    artifact_root: str | None = None,
    study: str | None = None,
    announce: Callable[[str], None] = print,
) -> int:
    """Run the MLflow UI in the foreground until it exits or this process is interrupted.

    Returns the server's exit code (0 after Ctrl-C or SIGTERM). For an ``http(s)``
    tracking URI it only announces that URL, since that server already has the UI.
    Each study experiment (only ``study``'s when given) is announced by the URL of its
    trials in the model-training view, ranked by validation accuracy, with the recipe columns.
    """
    require_store(tracking_uri)  # a server must answer, a local store must exist
    own = not is_server(tracking_uri) and has_app()  # the server started here opens routes through its page
    try:
        views = trial_views(tracking_uri, study, shared=not own)
    except Exception:  # the UI still serves the store; only the direct links are left out
        views = []
    if is_server(tracking_uri):  # it already serves its own UI: there is nothing to start
        base = redact(tracking_uri.rstrip("/"))
        announce(f"MLflow UI: {base}/#{experiments_path()} (served by the tracking server)")
        _announce_views(base, views, announce, own=False)
        return 0
    check_port(host, port)
    command = ui_command(tracking_uri, host=host, port=port, workers=workers, artifact_root=artifact_root)
    # Own process group: stopping the UI stops mlflow's uvicorn workers with it.
    server = subprocess.Popen(command, start_new_session=True)
    announce(f"MLflow UI: {_link(ui_url(host, port), experiments_path(), own)}  "
             f"(store {redact(tracking_uri)}; Ctrl-C stops it)")
    _announce_views(ui_url(host, port), views, announce, own=own)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return _shutdown(server)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            _shutdown(server)


def plain_ui_link(tracking_uri: str, study: str, port: int = 5000) -> str:
    """Where to open ``study`` in a plain ``mlflow ui`` on this machine (MLflow's default port): its trials
    in the model-training view with the shared trials view; the experiment list when the study has none."""
    try:
        views = trial_views(tracking_uri, study)
    except Exception:  # a store that cannot be read now: the list still opens in the right view
        views = []
    return f"{ui_url(LOOPBACK, port)}/#{views[0][1] if views else experiments_path()}"


def _link(base: str, route: str, own: bool) -> str:
    return base + (open_route(route) if own else f"/#{route}")


def _announce_views(base: str, views: list[tuple[str, str]], announce: Callable[[str], None], *, own: bool) -> None:
    for name, path in views:
        announce(f"  trials of {name}: {_link(base, path, own)}")
    if views:
        announce("  (MLflow's model-training view: best val_acc first, dataset, recipe and cost columns, charts of "
                 "val_acc against cost and recipe" + ("" if own else "; the sidebar's 'Model training' switch keeps "
                                                      "that view when you follow MLflow's own links") + ")")


def _shutdown(server: subprocess.Popen[bytes], grace_s: float = 10.0) -> int:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    except ProcessLookupError:
        pass
    return 0


__all__ = ["HOSTS", "LOOPBACK", "check_host", "check_port", "free_port", "has_app", "is_loopback", "plain_ui_link", "serve_ui",
           "ui_command", "ui_url"]
