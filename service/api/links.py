"""OpenAPI links from a create response to the routes that take its id (for clients and for
stateful API fuzzers such as schemathesis)."""

from __future__ import annotations

from typing import Any


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def id_links(param: str, targets: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """`links` of a response whose body `id` fills path parameter `param` of each target."""
    return {
        name: {"operationRef": _ref(path, method), "parameters": {param: "$response.body#/id"}}
        for name, (path, method) in targets.items()
    }
