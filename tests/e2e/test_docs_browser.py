"""`/docs` and `/redoc` render in a real browser with the network blocked.

`elmo api` runs as a process; headless Chromium (Debian's `chromium` package) loads each page with
every host but 127.0.0.1 unresolvable and every other address sent to a dead proxy, runs its
JavaScript and dumps the DOM. Swagger UI must show every operation of the OpenAPI document and
ReDoc every operation id: that only happens when the bundles came from this server. Without
Chromium the tests skip, unless ELMO_E2E_REQUIRE=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_stack import Proc, free_port, wait_http

OFFLINE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",  # loopback bypasses it; anything else goes nowhere
    "--virtual-time-budget=30000",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of the Chromium binary."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("ELMO_E2E_REQUIRE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, elmo_cmd: list[str]) -> Iterator[str]:
    """URL of an `elmo api` process over a fresh home (SQLite, embedded broker)."""
    home = tmp_path_factory.mktemp("docs-home")
    env = {**os.environ, "ELMO_HOME": str(home)}
    for name in ("ELMO_DATABASE_URL", "ELMO_BROKER_URL", "ELMO_ARTIFACTS_DIR"):
        env.pop(name, None)
    port = free_port()
    api = Proc([*elmo_cmd, "api", "--port", str(port), "--log-level", "warning"], env, home / "log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", [api])
        yield url
    finally:
        api.stop()


def rendered_dom(chromium: str, url: str, profile: Path) -> str:
    """The DOM of `url` after its scripts ran, loaded with the network blocked."""
    result = subprocess.run(
        [chromium, *OFFLINE_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_swagger_ui_renders_every_operation_offline(
    chromium: str, api_url: str, tmp_path: Path
) -> None:
    spec = httpx.get(f"{api_url}/openapi.json").json()
    dom = rendered_dom(chromium, f"{api_url}/docs", tmp_path / "profile")
    shown = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert shown == set(spec["paths"]), sorted(set(spec["paths"]) ^ shown)
    assert "/v1/models/{model_id}/predict" in shown


def test_redoc_renders_every_operation_offline(chromium: str, api_url: str, tmp_path: Path) -> None:
    spec = httpx.get(f"{api_url}/openapi.json").json()
    operation_ids = {
        op["operationId"] for methods in spec["paths"].values() for op in methods.values()
    }
    dom = rendered_dom(chromium, f"{api_url}/redoc", tmp_path / "profile")
    shown = set(re.findall(r'data-section-id="operation/([^"]+)"', dom))
    assert operation_ids <= shown, sorted(operation_ids - shown)
