"""A real `elmo api` process spools an upload's body under ELMO_HOME, not the host's /tmp: while a
multipart upload is half sent, the server holds its spill file open in `ELMO_HOME/.../tmp/spool`."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from e2e_stack import Proc, create_key, free_port, wait_http

BOUNDARY = "elmo-spool-test"
HALF = 3 << 20  # past Starlette's 1 MiB in-memory spool: the part is on disk by then


def _open_files(pid: int) -> list[str]:
    """The targets of the process's open file descriptors (deleted files keep their path)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    targets = []
    for fd in fd_dir.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile
    return targets


def test_an_upload_in_flight_spools_under_elmo_home(tmp_path: Path, elmo_cmd: list[str]) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {
        **os.environ,
        "ELMO_HOME": str(home),
        "ELMO_DATABASE_URL": f"sqlite:///{tmp_path / 'elmo.db'}",
    }
    env.pop("ELMO_BROKER_URL", None)
    api = Proc([*elmo_cmd, "api", "--port", str(port), "--log-level", "warning"], env,
               tmp_path / "api.log")  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", [api])
        key = create_key(elmo_cmd, env, "spool")
        second_half = threading.Event()

        def body() -> Iterator[bytes]:
            yield (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="d.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            yield b'{"text": "a", "labels": ["x"]}\n' * (HALF // 32)
            second_half.wait(60)
            yield f"\r\n--{BOUNDARY}--\r\n".encode()

        result: dict[str, httpx.Response] = {}

        def send() -> None:
            result["response"] = httpx.post(
                f"http://127.0.0.1:{port}/v1/datasets",
                content=body(),
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                },
                timeout=120,
            )

        sender = threading.Thread(target=send)
        sender.start()
        spool = str(home)
        seen: list[str] = []
        deadline = time.monotonic() + 60  # a wait for a condition, not a timed assertion
        while not seen and time.monotonic() < deadline and sender.is_alive():
            seen = [t for t in _open_files(api.popen.pid) if "/tmp/spool/" in t]
            time.sleep(0.1)
        second_half.set()
        sender.join(120)
        assert seen, "no spill file of the upload was open under ELMO_HOME"
        assert all(t.startswith(spool) for t in seen), seen
        assert result["response"].status_code == 201, result["response"].text
    finally:
        api.stop()
