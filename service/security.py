"""Two guards in front of every route, as plain ASGI middleware.

* ``TokenGuard``: when a token is set, every request (the page, the API, the OpenAPI schema)
  carries it as ``Authorization: Bearer <token>`` (or ``X-Floss-Token``; a browser may put it in
  the query once, ``/?token=...``, and keeps it in an HttpOnly cookie). Compared in constant time.
* ``BodyLimit``: a body over ``max_bytes`` is refused with 413, by its Content-Length before a
  byte is read, or while it streams (chunked) as soon as the count passes the limit.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "floss_token"


async def _send_json(
    send: Send, status: int, detail: str, headers: list[Any] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def presented_token(scope: Scope) -> tuple[str | None, bool]:
    """(the token the request carries, whether it came in the query string)."""
    auth = _header(scope, b"authorization")
    if auth and auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    direct = _header(scope, b"x-floss-token")
    if direct:
        return direct.strip(), False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], True
    cookie = _header(scope, b"cookie") or ""
    for part in cookie.split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE and value:
            return value, False
    return None, False


class TokenGuard:
    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        given, from_query = presented_token(scope)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            await _send_json(
                send,
                401,
                "this service needs a token: send 'Authorization: Bearer <token>' "
                "(or open /?token=<token> once in a browser)",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        if not from_query:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())],
                }
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class BodyLimit:
    """Reads the body first (it is small by design), so the route never sees one over the
    limit, however it was sent."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = f"request body over {self.max_bytes:,} bytes (the service's --max-body-bytes)"
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _send_json(send, 400, f"Content-Length {length!r} is not a number")
                return
            if declared > self.max_bytes:
                await _send_json(send, 413, too_big)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_json(send, 413, too_big)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
