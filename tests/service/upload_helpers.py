"""Building upload payloads for the service tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

MINI = Path(__file__).resolve().parents[2] / "examples" / "debian-deps-mini"


def tar_gz(files: dict[str, bytes], prefix: str = "") -> bytes:
    """An in-memory .tar.gz of `files` (name -> content), names prefixed with `prefix`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def mini_files() -> dict[str, bytes]:
    """The files of examples/debian-deps-mini."""
    return {p.name: p.read_bytes() for p in sorted(MINI.iterdir())}
