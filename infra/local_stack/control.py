"""The control server: what tests need to see and drive the functions directly.

* `GET /status` -> `{"functions": {"<binary>": [{"slot", "pid", "busy", "request_id",
  "restarts", "ready"}]}}`: which process holds which invocation, and how often each slot was
  restarted (tests kill processes and watch them come back).
* `POST /2015-03-31/functions/<binary or logical id>/invocations`: the Lambda Invoke API.
  RequestResponse returns the function's response; a failed invocation answers 200 with
  `X-Amz-Function-Error` and the error document, as Lambda does. `X-Amz-Invocation-Type:
  Event` queues the invocation and answers 202; `DryRun` answers 204.
"""

from __future__ import annotations

import logging
import re
import threading

from . import httputil
from .lambda_runtime import FunctionPool

log = logging.getLogger("local_stack")

MAX_PAYLOAD = 6 * 1024 * 1024
_INVOKE = re.compile(r"/2015-03-31/functions/([^/?]+)/invocations(?:\?.*)?")


class ControlServer(httputil.Server):
    def __init__(self, pools: dict[str, FunctionPool]):
        self.pools = pools
        self.by_name = {**{p.spec.logical_id: p for p in pools.values()}, **pools}
        super().__init__(("127.0.0.1", 0), ControlHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ControlHandler(httputil.QuietHandler):
    server: ControlServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/status":
            httputil.send_json(self, 200, {"functions": {name: pool.status() for name, pool in self.server.pools.items()}})
        else:
            httputil.send_json(self, 404, {"message": "Not Found"})

    def do_POST(self) -> None:
        match = _INVOKE.fullmatch(self.path)
        try:
            payload = httputil.read_body(self, MAX_PAYLOAD)
        except httputil.BodyTooLarge:
            self.close_connection = True
            return httputil.send_json(self, 413, {"Type": "User", "message": "Request must be smaller than 6291456 bytes"})
        except httputil.BadRequest as e:
            self.close_connection = True
            return httputil.send_json(self, 400, {"Type": "User", "message": str(e)})
        if not match:
            return httputil.send_json(self, 404, {"message": "Not Found"})
        pool = self.server.by_name.get(match.group(1).rsplit(":", 1)[-1])
        if pool is None:
            return httputil.send_json(
                self, 404, {"Type": "User", "message": f"Function not found: {match.group(1)}"}, [("X-Amzn-ErrorType", "ResourceNotFoundException")]
            )
        payload = payload or b"{}"
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "DryRun":
            return httputil.send(self, 204)
        if kind == "Event":
            threading.Thread(target=pool.invoke, args=(payload,), daemon=True).start()
            return httputil.send(self, 202)
        result = pool.invoke(payload)
        headers = [("X-Amz-Executed-Version", "$LATEST")]
        if result.ok:
            return httputil.send(self, 200, result.payload, headers)
        if result.reason == "stopped":
            return httputil.send(self, 503, result.payload, [("X-Amzn-ErrorType", "ServiceException"), *headers])
        headers.append(("X-Amz-Function-Error", "Unhandled"))
        return httputil.send(self, 200, result.payload, headers)
