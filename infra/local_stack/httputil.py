"""Small HTTP helpers shared by the local servers (all built on `http.server`)."""

from __future__ import annotations

import json
import logging
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("local_stack")


class BodyTooLarge(Exception):
    pass


class BadRequest(Exception):
    pass


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    """The request body, by Content-Length or chunked transfer coding; at most `limit` bytes."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks, total = [], 0
        while True:
            line = handler.rfile.readline(1024)
            if not line:
                raise BadRequest("truncated chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("malformed chunk size") from None
            if size == 0:
                while handler.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > limit:
                raise BodyTooLarge()
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline(8)  # CRLF after the chunk
    raw = handler.headers.get("Content-Length")
    if raw is None:
        return b""
    try:
        length = int(raw)
    except ValueError:
        raise BadRequest("malformed Content-Length") from None
    if length < 0:
        raise BadRequest("malformed Content-Length")
    if length > limit:
        raise BodyTooLarge()
    return handler.rfile.read(length) if length else b""


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    content_type: str | None = "application/json",
) -> None:
    """A complete response with Content-Length (keeps HTTP/1.1 connections reusable)."""
    if status in (204, 304) or status < 200:
        body = b""  # these never carry a body
    handler.send_response(status)
    names = {k.lower() for k, _ in headers or []}
    if content_type and "content-type" not in names:
        handler.send_header("Content-Type", content_type)
    for name, value in headers or []:
        handler.send_header(name, value)
    if status != 204 and status >= 200:
        handler.send_header("Content-Length", str(len(body)))
    # Head and body in one write: two small writes meet Nagle and delayed ACKs (+40 ms).
    handler._headers_buffer.append(b"\r\n")
    if body and handler.command != "HEAD":
        handler._headers_buffer.append(body)
    data = b"".join(handler._headers_buffer)
    handler._headers_buffer = []
    handler.wfile.write(data)


def send_json(handler: BaseHTTPRequestHandler, status: int, value, headers: list[tuple[str, str]] | None = None) -> None:
    send(handler, status, json.dumps(value, separators=(",", ":")).encode(), headers)


class Server(ThreadingHTTPServer):
    """A threaded server whose handler threads never keep the process alive."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        # A peer that went away (a killed function process, a client hanging up) is routine.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        log.exception("error while serving %s:%s", *client_address[:2])


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "local-stack"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass
