"""Pretraining runs of a study's experiment: each nested under the experiment's ``pretraining`` run,
with the pretraining's own start and end, so they are never shown or ranked with trials."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mlflow.entities import Metric

import tl_bench
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.tracking.guard import _guarded, _now_ms
from tl_bench.tracking.names import (
    HOST,
    KIND,
    KIND_PRETRAINING,
    MAX_TAG,
    PARENT_RUN_ID,
    PID,
    PRETRAINING_RUN,
    RUN_NOTE,
    RUN_STATUS,
    VERSION,
    config_params,
    pretrain_run_name,
    pretrain_tags,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


class PretrainRecords:
    """The part of ``Tracker`` that records pretraining (and other runs written after they ended)."""

    enabled: bool
    tracking_uri: str | None
    experiment_id: str
    _client: MlflowClient | None
    _artifact_uris: dict[str, str]

    @_guarded
    def record_run(
        self,
        *,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, str],
        metrics: Sequence[tuple[str, float, int]],
        state: str,
        start_ms: int,
        end_ms: int,
    ) -> str:
        """Write a whole run that has already ended (``metrics`` as name, value, step); returns its id.
        A write that fails ends the run FAILED before the error goes on: none is left RUNNING."""
        assert self._client is not None
        run_id = self._client.create_run(self.experiment_id, start_time=start_ms, run_name=run_name,
                                        tags={k: v[:MAX_TAG] for k, v in tags.items()}).info.run_id
        try:
            self._log(run_id, params=params, metrics=[Metric(k, float(v), end_ms, step) for k, v, step in metrics])
        except BaseException:
            with contextlib.suppress(Exception):  # the store itself may be what failed
                self._client.set_terminated(run_id, status="FAILED", end_time=_now_ms())
            raise
        self._client.set_terminated(run_id, status=RUN_STATUS[state], end_time=end_ms)
        return run_id

    @_guarded
    def record_pretrain(
        self, config: TrialConfig, result: TrialResult, *, source: str, checkpoint: str, pretrain_time_s: float,
        start_ms: int | None = None, end_ms: int | None = None,
    ) -> str:
        """A run of its own kind (``tlb.kind=pretrain``) nested under the experiment's pretraining run,
        so leaderboards and the trials view never include it; its times are the pretraining's own."""
        if not self.enabled:
            return ""
        assert self._client is not None
        end_ms = end_ms if end_ms is not None else _now_ms()
        start_ms = start_ms if start_ms is not None else end_ms - int(pretrain_time_s * 1000)
        tags = pretrain_tags(source=source, checkpoint=checkpoint, source_dataset=config.dataset)
        tags |= {HOST: socket.gethostname(), PID: str(os.getpid()), PARENT_RUN_ID: self.pretraining_parent(start_ms)}
        run = self._client.create_run(self.experiment_id, start_time=start_ms,
                                      run_name=pretrain_run_name(source, config.backbone), tags=tags)
        self._artifact_uris[run.info.run_id] = run.info.artifact_uri
        timing = Metric("pretrain_time_s", float(pretrain_time_s), end_ms, 0)
        self._log(run.info.run_id, params=config_params(config), metrics=[timing])
        # Curves, results and the resolved config are written as for a trial, in one batch.
        self.finish_trial(run.info.run_id, "COMPLETE", result=result, history=result.history, config=config,
                          end_ms=end_ms)
        self.end_pretraining_parent(tags[PARENT_RUN_ID], end_ms)
        return run.info.run_id

    def pretraining_parent(self, start_ms: int) -> str:
        """The experiment's pretraining run (``tlb.kind=pretraining``), made by the first pretraining."""
        assert self._client is not None
        found = list(self.runs(f"tags.`{KIND}` = '{KIND_PRETRAINING}'"))
        if found:
            return min(found, key=lambda r: (r.info.start_time or 0, r.info.run_id)).info.run_id
        tags = {KIND: KIND_PRETRAINING, VERSION: tl_bench.__version__,
                RUN_NOTE: "Local pretraining of `local:NAME` weights: one nested run per checkpoint."}
        return self._client.create_run(self.experiment_id, start_time=start_ms, run_name=PRETRAINING_RUN,
                                       tags=tags).info.run_id

    def end_pretraining_parent(self, run_id: str, end_ms: int) -> None:
        """The pretraining run ends with its last pretraining (a later one extends it)."""
        assert self._client is not None
        if run_id:
            ended = self._client.get_run(run_id).info.end_time or 0
            self._client.set_terminated(run_id, status="FINISHED", end_time=max(ended, end_ms))


__all__ = ["PretrainRecords"]
