"""Reject request bodies over the configured size from their Content-Length, before parsing."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

MULTIPART_SLACK = 1 << 20


class BodySizeLimit:
    """ASGI middleware: 413 problem+json when Content-Length exceeds the limit.

    Multipart uploads get `max_upload_bytes` (+1 MiB for the form envelope), other bodies
    `max_json_bytes`. Uploads without a Content-Length are checked after receipt by the route.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        self.max_upload = max_upload_bytes + MULTIPART_SLACK
        self.max_json = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            ctype = headers.get(b"content-type", b"")
            limit = self.max_upload if ctype.startswith(b"multipart/") else self.max_json
            if length is not None and length.isdigit() and int(length) > limit:
                await _too_large(scope, send, int(length), limit)
                return
        await self.app(scope, receive, send)


async def _too_large(scope: Scope, send: Send, length: int, limit: int) -> None:
    body = json.dumps(
        {
            "type": "urn:elmo:problem:too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"request body of {length} bytes exceeds the limit of {limit} bytes",
            "instance": scope.get("path", ""),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
