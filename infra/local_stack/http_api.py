"""An emulated API Gateway HTTP API in front of the functions with `HttpApi` events.

It does what API Gateway does with a Lambda proxy integration, payload format 2.0
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html):
picks the route (most specific first: literal paths, then path variables, then greedy
`{name+}`; a method before ANY; `$default` last), builds the 2.0 event, invokes the function
synchronously and turns its answer back into an HTTP response, including the 2.0 rule that a
response without `statusCode` is a 200 whose body is the returned JSON. Errors look like API
Gateway's: 404 `{"message":"Not Found"}` for no route, 500 `{"message":"Internal Server
Error"}` when the function fails or times out, 503 `{"message":"Service Unavailable"}` when no
process answers within the integration timeout, 413 for bodies over 10 MB.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import urllib.parse
from dataclasses import dataclass

from . import httputil
from .lambda_runtime import FunctionPool, Result
from .template import HttpRoute

log = logging.getLogger("local_stack")

MAX_BODY = 10 * 1024 * 1024
STAGE = "$default"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HOP_BY_HOP = {"connection", "content-length", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer"}


@dataclass
class Route:
    route: HttpRoute
    pool: FunctionPool

    def __post_init__(self) -> None:
        path = self.route.path
        self.segments = [] if path is None or path.strip("/") == "" else path.strip("/").split("/")
        self.greedy = bool(self.segments) and self.segments[-1].startswith("{") and self.segments[-1].endswith("+}")

    @property
    def key(self) -> str:
        return self.route.route_key

    def rank(self) -> tuple:
        literal = sum(1 for s in self.segments if not s.startswith("{"))
        return (self.route.path is None, self.greedy, -literal, -len(self.segments), self.route.method == "ANY")

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters if this route takes the request, else None."""
        if self.route.method != "ANY" and self.route.method != method:
            return None
        if self.route.path is None:
            return {}
        rest = raw_path[1:] if raw_path.startswith("/") else raw_path
        parts = rest.split("/") if rest else []
        params: dict[str, str] = {}
        for i, segment in enumerate(self.segments):
            is_var = segment.startswith("{") and segment.endswith("}")
            if is_var and segment.endswith("+}"):
                value = "/".join(parts[i:])
                if not value:
                    return None
                params[segment[1:-2]] = urllib.parse.unquote(value)
                return params
            if i >= len(parts):
                return None
            if is_var:
                if not parts[i]:
                    return None
                params[segment[1:-1]] = urllib.parse.unquote(parts[i])
            elif urllib.parse.unquote(parts[i]) != segment:
                return None
        return params if len(parts) == len(self.segments) else None


def api_gateway_time(epoch: float) -> str:
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def request_id() -> str:
    return base64.b64encode(secrets.token_bytes(10)).decode()


class HttpApiServer(httputil.Server):
    def __init__(self, port: int, routes: list[Route], *, api_id: str, account_id: str, verbose: bool = False):
        self.routes = sorted(routes, key=Route.rank)
        self.api_id = api_id
        self.account_id = account_id
        self.verbose = verbose
        super().__init__(("127.0.0.1", port), HttpApiHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]


class HttpApiHandler(httputil.QuietHandler):
    server: HttpApiServer
    timeout = 120  # idle keep-alive connections are closed after this

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it.
        try:
            too_large = int(self.headers.get("Content-Length", "0")) > MAX_BODY
        except ValueError:
            too_large = False
        if too_large:
            self.close_connection = True
            httputil.send_json(self, 413, {"message": "Request Entity Too Large"}, [("Apigw-Requestid", request_id())])
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str):
        # An `ANY` route takes every method, TRACE and extension methods included (the
        # function answers 405 for those it does not serve); http.server would say 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        started = time.monotonic()
        epoch = time.time()
        rid = request_id()
        raw_path, _, raw_query = self.path.partition("?")
        if not raw_path.startswith("/"):  # absolute-form request target
            raw_path = "/" + raw_path.split("://", 1)[-1].partition("/")[2]
        try:
            body = httputil.read_body(self, MAX_BODY)
        except httputil.BodyTooLarge:
            self.close_connection = True
            return self._answer(413, {"message": "Request Entity Too Large"}, rid, started)
        except httputil.BadRequest:
            self.close_connection = True
            return self._answer(400, {"message": "Bad Request"}, rid, started)

        # RFC 9110 §5.5: NUL, CR and LF never appear in a field value; AWS's front door refuses
        # such a request rather than hand it to the function (which could not parse it either).
        if any(ch in value for value in self.headers.values() for ch in "\x00\r\n"):
            self.close_connection = True
            return self._answer(400, {"message": "Bad Request"}, rid, started)

        for route in self.server.routes:
            params = route.match(self.command, raw_path)
            if params is not None:
                break
        else:
            return self._answer(404, {"message": "Not Found"}, rid, started)

        event = self._event(route, params, raw_path, raw_query, body, rid, epoch)
        result = route.pool.invoke(json.dumps(event).encode(), wait_timeout=route.route.timeout_ms / 1000)
        try:
            status, headers, payload = to_http_response(result)
        except ValueError as e:
            log.warning("%s: malformed response for %s %s: %s", route.pool.name, self.command, raw_path, e)
            return self._answer(500, {"message": "Internal Server Error"}, rid, started)
        if status >= 500 and not result.ok:
            log.warning("%s %s -> %d (%s: %s)", self.command, raw_path, status, result.reason, result.payload[:300].decode("utf-8", "replace"))
        headers.append(("Apigw-Requestid", rid))
        httputil.send(self, status, payload, headers, content_type=None)
        self._log(status, started)

    def _answer(self, status: int, document: dict, rid: str, started: float) -> None:
        httputil.send_json(self, status, document, [("Apigw-Requestid", rid)])
        self._log(status, started)

    def _log(self, status: int, started: float) -> None:
        if self.server.verbose:
            log.info("%s %s -> %d (%.1f ms)", self.command, self.path, status, (time.monotonic() - started) * 1000)

    def _event(self, route: Route, params: dict, raw_path: str, raw_query: str, body: bytes, rid: str, epoch: float) -> dict:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in self.headers.items():
            name = name.lower()
            if name == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
                continue
            if name == "transfer-encoding":
                continue
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        client_ip = self.client_address[0]
        headers["x-forwarded-for"] = f"{headers['x-forwarded-for']}, {client_ip}" if "x-forwarded-for" in headers else client_ip
        headers.setdefault("x-forwarded-port", str(self.server.port))
        headers.setdefault("x-forwarded-proto", "http")
        headers.setdefault("x-amzn-trace-id", f"Root=1-{int(epoch):08x}-{secrets.token_hex(12)}")
        if body and "content-length" not in headers:
            headers["content-length"] = str(len(body))

        query: dict[str, str] = {}
        for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value

        domain = headers.get("host", f"127.0.0.1:{self.server.port}")
        event: dict = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        if query:
            event["queryStringParameters"] = query
        event["requestContext"] = {
            "accountId": self.server.account_id,
            "apiId": self.server.api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": self.command,
                "path": raw_path,
                "protocol": self.request_version,
                "sourceIp": client_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": rid,
            "routeKey": route.key,
            "stage": STAGE,
            "time": api_gateway_time(epoch),
            "timeEpoch": int(epoch * 1000),
        }
        if params:
            event["pathParameters"] = params
        if body:
            try:
                event["body"] = body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["isBase64Encoded"] = False
        return event


def to_http_response(result: Result) -> tuple[int, list[tuple[str, str]], bytes]:
    """The function's answer as API Gateway turns it into HTTP (payload format 2.0)."""
    if not result.ok:
        if result.reason in ("throttled", "gave_up", "stopped"):
            return 503, [("Content-Type", "application/json")], b'{"message":"Service Unavailable"}'
        return 500, [("Content-Type", "application/json")], b'{"message":"Internal Server Error"}'
    try:
        document = json.loads(result.payload)
    except ValueError:
        raise ValueError("the function returned something that is not JSON") from None

    if not (isinstance(document, dict) and "statusCode" in document):
        # 2.0 inference: any other valid JSON is the body of a 200.
        body = document.encode() if isinstance(document, str) else result.payload
        return 200, [("Content-Type", "application/json")], body

    try:
        status = int(document["statusCode"])
    except (TypeError, ValueError):
        raise ValueError(f"statusCode {document['statusCode']!r} is not a number") from None
    if not 100 <= status <= 599:
        raise ValueError(f"statusCode {status} is out of range")

    headers: list[tuple[str, str]] = []
    for name, value in (document.get("headers") or {}).items():
        if name.lower() not in _HOP_BY_HOP:
            headers.append((name, _header_value(value)))
    for name, values in (document.get("multiValueHeaders") or {}).items():
        if name.lower() not in _HOP_BY_HOP:
            for value in values if isinstance(values, list) else [values]:
                headers.append((name, _header_value(value)))
    for cookie in document.get("cookies") or []:
        headers.append(("Set-Cookie", str(cookie)))

    body = document.get("body")
    if body is None:
        payload = b""
    elif document.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(str(body), validate=False)
        except ValueError:
            raise ValueError("isBase64Encoded but the body is not base64") from None
    elif isinstance(body, str):
        payload = body.encode("utf-8")
    else:
        payload = json.dumps(body).encode()
    return status, headers, payload


def _header_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\r", " ").replace("\n", " ")
