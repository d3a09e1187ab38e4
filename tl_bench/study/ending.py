"""A dataset study's end: its summary on the parent run and its champion in the registry, claimed by one
process and marked done only once all of it is written.

Any process may be the last of a study's workers, so each one that stops asks ``claim_end``. A claim
(the study's ``summary_claim`` attribute in Optuna) names the count of ended trials it is for and the
process that holds it (host, pid, pid namespace, time). ``summarise`` writes the summary, hands it to
the caller's ``on_summary`` (a dashboard), registers the champion, and then marks the claim done
(``summary_done``). A claim that is not done and whose process is gone (killed, or interrupted while
it summarised) is an unfinished end: the next process that ends the study takes it over, and
``tl-bench doctor`` reports it (``unfinished_summary``) and with ``--repair`` finishes it. A claim
held on another host is taken over once it is older than ``CLAIM_STALE_S``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import optuna

from tl_bench.crash_points import crash_point
from tl_bench.errors import warn
from tl_bench.spec import StudySpec
from tl_bench.study.keep import publish_champion
from tl_bench.study.options import SummaryCallback
from tl_bench.study.storage import CLAIM_SETTLE_S, SUMMARY_CLAIM, SUMMARY_DONE
from tl_bench.study.summary import write_summary
from tl_bench.study.workers import pid_namespace, process_alive
from tl_bench.tracking import Tracker

CLAIM_STALE_S = 3600.0  # a claim of another host's process is taken over after this long


@dataclass(frozen=True)
class Claim:
    """Which process ends a study, at which count of ended trials."""

    ended: int
    token: str
    host: str = ""
    pid: int | None = None
    pid_namespace: str = ""
    at: float = 0.0  # time.time() of the claim

    @classmethod
    def read(cls, value: Any) -> Claim | None:
        """The claim a study attribute holds; an older store's ``"<ended>:<token>"`` names no process."""
        if isinstance(value, dict):
            try:
                pid = value.get("pid")
                return cls(int(value["ended"]), str(value["token"]), str(value.get("host", "")),
                           pid if isinstance(pid, int) else None, str(value.get("pid_namespace", "")),
                           float(value.get("at", 0.0)))
            except (KeyError, TypeError, ValueError):
                return None
        count, sep, token = str(value or "").partition(":")
        return cls(int(count), token) if sep and count.isdigit() else None

    def holder_alive(self) -> bool:
        """Whether the process holding the claim may still be writing the end (this process never is:
        it ends a study in one call, so a claim of its own left undone is a call that failed)."""
        if not self.host:
            return False
        if self.host == socket.gethostname() and self.pid_namespace == pid_namespace() and self.pid is not None:
            return process_alive(self.pid)
        return time.time() - self.at < CLAIM_STALE_S

    def holder(self) -> str:
        return f"process {self.pid} on {self.host}" if self.host else "a process of an earlier tl-bench version"


def _done(study: optuna.Study, claim: Claim) -> bool:
    return study.user_attrs.get(SUMMARY_DONE) == claim.token


def claim_end(study: optuna.Study, ended: int) -> Claim | None:
    """This process's claim on ending the study at ``ended`` ended trials; None when that end is written
    already or a live process holds it.

    Optuna has no compare-and-set: each asker writes its own claim, waits for the others' writes to
    land, and the one whose claim stayed wins.
    """
    current = Claim.read(study.user_attrs.get(SUMMARY_CLAIM))
    if current is not None and current.ended == ended and (_done(study, current) or current.holder_alive()):
        return None
    claim = Claim(ended, uuid.uuid4().hex, socket.gethostname(), os.getpid(), pid_namespace(), time.time())
    study.set_user_attr(SUMMARY_CLAIM, asdict(claim))
    time.sleep(CLAIM_SETTLE_S)
    won = Claim.read(study.user_attrs.get(SUMMARY_CLAIM))
    return claim if won is not None and won.token == claim.token else None


def unfinished_end(study: optuna.Study) -> Claim | None:
    """The claim of an end left unfinished by a process that is gone; None when there is none. An
    older store's claim names no process, so whether its end was finished is not known: not reported
    (the next ``tl-bench run`` writes that end again)."""
    claim = Claim.read(study.user_attrs.get(SUMMARY_CLAIM))
    if claim is None or not claim.host or _done(study, claim) or claim.holder_alive():
        return None
    return claim


def summarise(spec: StudySpec, tracker: Tracker, study: optuna.Study, dataset: str, parent_run_id: str,
              claim: Claim, on_summary: SummaryCallback | None = None) -> bool:
    """Write the study's end under ``claim``: the summary, ``on_summary``, the champion; then mark the claim
    done. Returns whether it was all written: a champion that could not be registered is warned about,
    and the claim stays open for the next end to try again."""
    crash_point("summary_claimed")
    write_summary(study, tracker, parent_run_id, spec.description)
    crash_point("summary_written")
    if on_summary is not None:
        on_summary(spec, tracker, dataset, parent_run_id)
    try:
        publish_champion(spec, tracker, study, dataset)
    except Exception as err:
        warn(f"the best model of {study.study_name} was not registered", err)
        return False
    study.set_user_attr(SUMMARY_DONE, claim.token)
    return True


__all__ = ["CLAIM_STALE_S", "Claim", "claim_end", "summarise", "unfinished_end"]
