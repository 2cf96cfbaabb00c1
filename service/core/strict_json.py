"""Refuse JSON request bodies that repeat a key in one object (`{"epochs": 1, "epochs": 500}`):
JSON parsers disagree on which value wins, so such a body is ambiguous, not a config."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.limits import BODY_METHODS, BodyTooLarge, problem_response


class DuplicateKey(ValueError):
    """An object in the body repeats a key."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


class StrictJson:
    """ASGI middleware: a JSON body with a repeated key gets 422 naming the key; any other body
    reaches the app unchanged (an invalid JSON body gets the app's own 422)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        is_json = headers.get(b"content-type", b"").split(b";")[0].strip() == b"application/json"
        if not is_json or scope.get("method", "").encode() not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except BodyTooLarge as exc:  # the size gate outside answers 413 for it
            await problem_response(scope, send, 413, "too-large", "Payload too large", exc.detail)
            return
        body = b"".join(chunks)
        try:
            json.loads(body, object_pairs_hook=_unique_pairs)
        except DuplicateKey as exc:
            detail = f"the JSON body repeats the key {exc.args[0]!r} in one object"
            await problem_response(scope, send, 422, "validation", "Invalid request", detail)
            return
        except ValueError:
            pass  # not JSON at all: the route's validation says so
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
