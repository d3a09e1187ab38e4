"""The MLflow server app ``tl-bench ui`` runs: MLflow's own, plus one page that opens a route in the model-training view.

``mlflow server --app-name tl-bench`` (the ``mlflow.app`` entry point) serves
MLflow's app unchanged and answers ``GET /tl-bench/open?to=<route>`` with a
small page that, in the browser, does what a user would otherwise do by hand
(``tracking.view``):

- stores "Model training" as the browser's choice of MLflow view, as MLflow's
  sidebar switch does, so that MLflow's own links (a trial of the runs table, an
  experiment of the list) stay in that view;
- for a study's trials route, stores tl-bench's trials view (columns, sort,
  charts) as the browser's own view of that experiment unless it has one, so the
  view opens with no "shared view" banner and keeps the user's changes;

then replaces itself with ``/#<route>``. The page holds no data and sends the
browser nowhere but a route of the same server.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote

from tl_bench.tracking.view import SAVED_VIEW_KEY, SHARED_VIEW_PREFIX, VIEW_KEY, WORKFLOW, WORKFLOW_KEY

OPEN_PATH = "/tl-bench/open"
APP_NAME = "tl-bench"  # the entry point's name: ``mlflow server --app-name tl-bench``

_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>tl-bench: opening MLflow</title></head>
<body><p>Opening the MLflow UI in its model-training view&hellip;</p><script>
(async function () {
  var to = %(to)s;
  try { localStorage.setItem(%(workflow_key)s, JSON.stringify(%(workflow)s)); } catch (e) {}
  var m = /^\\/experiments\\/(\\d+)\\/runs(\\?|$)/.exec(to);
  if (m) {
    var key = %(saved_view)s.replace("{experiment_id}", m[1]);
    try {
      if (!localStorage.getItem(key)) {
        var r = await fetch("/ajax-api/2.0/mlflow/experiments/get?experiment_id=" + m[1]);
        var tags = ((await r.json()).experiment || {}).tags || [];
        var view = tags.find(function (t) { return t.key === %(view_tag)s; });
        if (view) localStorage.setItem(key, view.value);
      }
    } catch (e) {}
  }
  location.replace("/#" + to);
})();
</script></body></html>
"""


def open_route(route: str) -> str:
    """The path (with query) of the page that opens UI ``route`` (after ``#``) in the model-training view."""
    return f"{OPEN_PATH}?to={quote(route, safe='/')}"


def landing_page(to: str) -> str:
    """The page for ``?to=``: a route of this UI only (``/...``), else the experiment list."""
    if not to.startswith("/") or to.startswith("//"):
        to = "/experiments"
    values = {"to": to, "workflow_key": WORKFLOW_KEY, "workflow": WORKFLOW, "saved_view": SAVED_VIEW_KEY,
              "view_tag": SHARED_VIEW_PREFIX + VIEW_KEY}
    # json.dumps makes each a JS string literal; "</" is escaped so no value can end the script
    return _PAGE % {k: json.dumps(v).replace("</", "<\\/") for k, v in values.items()}


class _App:
    """An ASGI app: the landing page at ``OPEN_PATH``, MLflow's app for everything else."""

    def __init__(self) -> None:
        self._mlflow: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == OPEN_PATH and scope.get("method") in ("GET", "HEAD"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            body = landing_page(query.get("to", ["/experiments"])[0]).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store"),
                                    (b"x-content-type-options", b"nosniff"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
            return
        if self._mlflow is None:  # imported in the server's workers only: it opens the store
            from mlflow.server.fastapi_app import app as mlflow_app

            self._mlflow = mlflow_app
        await self._mlflow(scope, receive, send)


app = _App()

__all__ = ["APP_NAME", "OPEN_PATH", "app", "landing_page", "open_route"]
