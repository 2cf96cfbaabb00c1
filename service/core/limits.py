"""The gate in front of every route: a body-carrying /v1 request needs a valid key before a byte
of its body is read, and a body may not grow past its limit, whether the client announced its
size (Content-Length, refused up front) or streams it (chunked: cut off at the limit)."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge

MULTIPART_SLACK = 1 << 20
PREDICT_BYTES_PER_CHAR = 6
"""A predict body's limit per allowed character: a JSON string escapes a character into at most
6 bytes (`\\uXXXX`), so `max_predict_chars` characters always fit."""
PREDICT_ENVELOPE = 1 << 20


BODY_METHODS = (b"POST", b"PUT", b"PATCH")


class BodyTooLarge(PayloadTooLarge):
    """A streamed request body went past its limit (raised from `receive`, rendered as 413)."""


class BodySizeLimit:
    """ASGI middleware: 401 for a /v1 body without a valid key (the body is never read), 413
    problem+json when Content-Length exceeds the limit or a streamed body grows past it.

    Multipart uploads get `max_upload_bytes` (+1 MiB for the form envelope), predict calls 6 bytes
    per allowed character (+1 MiB), other bodies `max_json_bytes`. `key_is_valid(token)` checks
    a bearer token (a database lookup, run in a thread).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_upload_bytes: int,
        max_json_bytes: int,
        key_is_valid: Callable[[str], bool],
        max_predict_chars: int | None = None,
    ) -> None:
        self.app = app
        self.max_upload = max_upload_bytes + MULTIPART_SLACK
        self.max_json = max_json_bytes
        self.max_predict = self.max_json
        if max_predict_chars is not None:
            predict = PREDICT_BYTES_PER_CHAR * max_predict_chars + PREDICT_ENVELOPE
            self.max_predict = min(self.max_json, predict)
        self.key_is_valid = key_is_valid

    def _limit(self, path: str, content_type: bytes) -> int:
        """The body limit of a request: uploads, predict calls (sized by the character limit, so
        a refused body is never parsed whole), other JSON."""
        if content_type.startswith(b"multipart/"):
            return self.max_upload
        if path.startswith("/v1/models/") and path.endswith("/predict"):
            return self.max_predict
        return self.max_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "").encode() not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope.get("path", "").startswith("/v1/") and not await self._authorized(headers):
            detail = "send a valid API key as 'Authorization: Bearer <key>'"
            challenge = [(b"www-authenticate", b"Bearer")]
            await problem_response(
                scope, send, 401, "unauthorized", "Unauthorized", detail, challenge
            )
            return
        length = headers.get(b"content-length")
        ctype = headers.get(b"content-type", b"")
        limit = self._limit(scope.get("path", ""), ctype)
        if length is not None and length.isdigit() and int(length) > limit:
            detail = f"request body of {int(length)} bytes exceeds the limit of {limit} bytes"
            await problem_response(scope, send, 413, "too-large", "Payload too large", detail)
            return
        received = 0
        detail = f"request body exceeds the limit of {limit} bytes"
        cut_off = False
        answered = False

        async def counted() -> Message:
            nonlocal received, cut_off
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut_off = True
                    raise BodyTooLarge(detail)
            return message

        async def answer(message: Message) -> None:
            # once the body was cut off, whatever the app makes of the aborted parse (FastAPI
            # answers 400) is replaced by the 413 that says why
            nonlocal answered
            if not cut_off:
                await send(message)
            elif not answered:
                answered = True
                await problem_response(scope, send, 413, "too-large", "Payload too large", detail)

        await self.app(scope, counted, answer)

    async def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        value = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return await anyio.to_thread.run_sync(self.key_is_valid, token.strip())


async def problem_response(
    scope: Scope,
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a problem+json response straight from a middleware (the connection is closed)."""
    body = json.dumps(
        {
            "type": f"urn:elmo:problem:{slug}",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": scope.get("path", ""),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(extra_headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
