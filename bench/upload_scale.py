"""A large dataset upload through a real `elmo api` process (issue 13, item 6): streamed from disk,
spooled under ELMO_HOME, unpacked and validated in a child process. Prints one JSON row: bytes,
seconds to the 201, the API's peak RSS (VmHWM) before and after, the dataset's counts.

    elmo data synth /tmp/up --shape amazon-3m --scale 0.6 --seed 0
    tar -cf /tmp/up.tar -C /tmp up
    python bench/upload_scale.py /tmp/up.tar --home /tmp/upload-home
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
from local_service import local_service

CHUNK = 1 << 20


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def stream(path: Path, boundary: str) -> Iterator[bytes]:
    """A multipart body with `path` as the `file` field, read 1 MiB at a time."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8191)
    args = parser.parse_args()
    size = args.archive.stat().st_size
    limits = {"ELMO_MAX_UPLOAD_BYTES": str(4 * size), "ELMO_MAX_EXTRACTED_BYTES": str(8 * size)}
    with local_service("api", args.home, args.port, limits) as service:
        api, base, key = service.process, service.url, service.key
        idle = peak_rss_mib(api.pid)
        boundary = "elmo-upload-bench"
        started = time.perf_counter()
        response = httpx.post(
            f"{base}/v1/datasets",
            content=stream(args.archive, boundary),
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            timeout=3600,
        )
        seconds = time.perf_counter() - started
        body = response.json()
        row = {
            "case": "upload",
            "archive_bytes": size,
            "status": response.status_code,
            "seconds": round(seconds, 1),
            "api_peak_rss_mib_idle": round(idle, 1),
            "api_peak_rss_mib_after": round(peak_rss_mib(api.pid), 1),
            "num_train": body.get("num_train"),
            "num_test": body.get("num_test"),
            "num_labels": body.get("num_labels"),
            "detail": body.get("detail"),
            "cores": os.cpu_count(),
            "date": date.today().isoformat(),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
