"""Faults made real for the reliability tests: a lock held by another process, a small disk that fills
up, a read-only folder, an MLflow server that dies, and the CLI run in this process to watch it.

Everything started here binds 127.0.0.1 and is stopped by its pid; mounts are undone on the way out.
A full disk is a small tmpfs mounted over a test folder, and a read-only folder a read-only bind mount
of it (as root; without root the read-only folder is made with chmod and a full disk is skipped).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
if sys.argv[4] == "armed":
    sys.stdin.readline()  # started ahead, the lock is taken the moment the test says so
db.execute("BEGIN " + sys.argv[3])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
print("released", flush=True)
"""


def hold_lock(path: Path, seconds: float, *, readers: bool = False, armed: bool = False) -> subprocess.Popen[str]:
    """Another process holding a write transaction on the SQLite file ``path`` for ``seconds``; returns
    once the lock is taken, or, ``armed``, once the process is ready to take it (``take_lock``).
    EXCLUSIVE by default (in rollback-journal mode no one else reads or writes), IMMEDIATE with
    ``readers`` (others read, no one else writes)."""
    mode = "IMMEDIATE" if readers else "EXCLUSIVE"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(seconds), mode,
                             "armed" if armed else "now"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if not armed:
        _locked(proc)
    return proc


def take_lock(proc: subprocess.Popen[str]) -> None:
    """Let an armed holder take its lock; returns once it holds it."""
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    _locked(proc)


def _locked(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked", proc.stderr.read() if proc.stderr else ""


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True)


@contextmanager
def small_disk(folder: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` mounted at ``folder`` for the block (root only, else the test is skipped)."""
    if os.geteuid() != 0:
        pytest.skip("a small disk to fill is a tmpfs mount, which needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0755", "tmpfs", str(folder))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        _run("umount", "-l", str(folder))


def fill_disk(folder: Path) -> Path:
    """Write a file into ``folder`` until its disk has no byte left; returns the file (delete it to free space)."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            try:
                while True:
                    handle.write(block)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
    return filler


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` read-only for the block: a read-only bind mount as root (root ignores file modes), else chmod."""
    if os.geteuid() == 0:
        for command in (("mount", "--bind", str(folder), str(folder)), ("mount", "-o", "remount,bind,ro", str(folder))):
            done = _run(*command)
            if done.returncode != 0:
                _run("umount", "-l", str(folder))
                pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")
        try:
            yield folder
        finally:
            _run("umount", "-l", str(folder))
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for path in modes:
        path.chmod(modes[path] & ~0o222)
    try:
        yield folder
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with an SQLite backend in ``folder``; it can be killed and started again
    on the same port and store."""

    folder: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 240) -> str:
        self.port = self.port or free_port()
        log = open(self.folder / "mlflow-server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
             "--artifacts-destination", str(self.folder / "server-artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2)
                return self.url
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"mlflow server did not start: {(self.folder / 'mlflow-server.log').read_text()[-3000:]}")
                time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL to the server and its workers (its process group), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self.kill()
        self.proc = None


@dataclass
class Cli:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.strip().splitlines()


def cli(args: list[str], capfd: pytest.CaptureFixture[str]) -> Cli:
    """``tl-bench ARGS`` through its entry point in this process (imports paid once), with what it
    writes on stdout and stderr; the signal handlers a command sets are put back afterwards."""
    from tl_bench.cli import main

    capfd.readouterr()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        main(args)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    captured = capfd.readouterr()
    return Cli(code, captured.out, captured.err)
