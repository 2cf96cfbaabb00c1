"""The elmo demo: start `elmo serve`, train on debian-deps-mini through the REST API, predict.

    python examples/demo.py [--port 8000] [--epochs 3] [--dim 128] [--keep-running]

Everything goes over HTTP, as any client in any language would do it: create an API key, upload
the dataset, create a training job, watch its progress, then ask for top-5 labels.
"""

from __future__ import annotations

import argparse
import io
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

HERE = Path(__file__).resolve().parent
MINI = HERE / "debian-deps-mini"
console = Console()


def elmo_cmd() -> list[str]:
    """The `elmo` command (installed script, else this interpreter)."""
    script = shutil.which("elmo")
    return (
        [script]
        if script
        else [sys.executable, "-c", "from elmo_core.cli.main import main; main()"]
    )


def free_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else any free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait for GET /readyz to answer 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("elmo serve exited; see the log above")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit(f"{url} did not become ready")


def dataset_archive() -> bytes:
    """examples/debian-deps-mini as an in-memory .tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(MINI, arcname=MINI.name)
    return buffer.getvalue()


def check(response: httpx.Response) -> dict:
    """The JSON body, or exit with the problem the API reported."""
    if response.is_error:
        sys.exit(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


def steps_text(step: int | None, total: int | None) -> str:
    """`12/69 steps`, or nothing while the job has no step count yet (queued, loading)."""
    return f"{step or 0}/{total} steps" if total else ""


def watch(client: httpx.Client, job_id: str) -> dict:
    """Show the job's progress until it finishes; return the final job."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[steps]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("queued", total=None, steps="", metrics="")
        while True:
            job = check(client.get(f"/v1/jobs/{job_id}"))
            p = job["progress"]
            metrics = job["latest_metrics"] or {}
            split = job.get("latest_metrics_split") or ""
            shown = f"{split} P@1 {metrics['P@1']:.1f}".strip() if "P@1" in metrics else ""
            epoch = f"epoch {p['epoch']}/{p['epochs']} " if p["epoch"] else ""
            bar.update(
                task,
                description=f"{epoch}{job['phase'] or job['state']}",
                completed=p["step"] or 0,
                total=p["total_steps"],
                steps=steps_text(p["step"], p["total_steps"]),
                metrics=shown,
            )
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.5)


TEST_PACKAGES = ("r-cran-multicool", "elpa-paredit", "python3-pytestqt", "rsyslog")
"""Test-split packages (never trained on) whose dependencies show what the model learns: the
language runtime and the libraries a description implies. rsyslog is itself a label."""
NEW_PACKAGES = (
    "python3-yamlparse: a Python 3 library for parsing YAML files",
    "ruby-jsonfast: a Ruby gem for parsing JSON",
    "r-cran-survfit: GNU R package for fitting survival models",
)
"""Made-up packages, in no split: how it ranks a description it has never seen."""


def label_names() -> list[str]:
    """The package name of each label (its text up to the first ':'), by label id."""
    return [t.split(":")[0] for t in (MINI / "Y.txt").read_text().splitlines()]


def print_ranking(labels: list[dict], true_ids: set[int]) -> None:
    """One line per predicted label: ✓ for a true one, the score, the label text."""
    for p in labels:
        mark = "[green]✓[/]" if p["label_id"] in true_ids else " "
        console.print(
            f"  {mark} {p['score']:.3f}  {p['label'][:60]}", no_wrap=True, overflow="ellipsis"
        )


def show_test_packages(client: httpx.Client, model_id: str) -> None:
    """Predict the dependencies of TEST_PACKAGES, marking the true ones.

    A package that is itself a label (others depend on it) describes that label best, so its own
    name would rank first; a package never depends on itself, so the request excludes it
    (`exclude_label_ids`, or `elmo predict --exclude-label NAME`).
    """
    names = label_names()
    ids = {name: i for i, name in enumerate(names)}
    lines = (MINI / "tst_X.txt").read_text().splitlines()
    truths = (MINI / "tst_X_Y.txt").read_text().splitlines()[1:]
    rows = [next(i for i, t in enumerate(lines) if t.startswith(f"{n}:")) for n in TEST_PACKAGES]
    texts = [lines[i] for i in rows]
    own = [[ids[n]] if n in ids else [] for n in TEST_PACKAGES]
    console.print(
        f"[bold]4.[/] POST /v1/models/{model_id}/predict (k=5) for test packages, never trained "
        "on; ✓ = a real dependency"
    )
    result = check(
        client.post(
            f"/v1/models/{model_id}/predict",
            json={"texts": texts, "k": 5, "exclude_label_ids": own},
        )
    )
    for row, text, excluded, labels in zip(rows, texts, own, result["predictions"], strict=True):
        true_ids = {int(item.split(":")[0]) for item in truths[row].split()}
        console.print(f"\n[bold]{text[:70]}...[/]", no_wrap=True, overflow="ellipsis")
        console.print(
            f"  depends on: {', '.join(names[i] for i in sorted(true_ids))}",
            no_wrap=True,
            overflow="ellipsis",
        )
        if excluded:
            console.print(
                f"  [dim](its own label {names[excluded[0]]} is excluded: the description "
                "matches it best, but no package depends on itself)[/]"
            )
        print_ranking(labels, true_ids)


def show_new_packages(client: httpx.Client, model_id: str) -> None:
    """Predict the dependencies of made-up package descriptions (NEW_PACKAGES)."""
    console.print("\n[bold]5.[/] the same for packages that do not exist (k=5)")
    texts = list(NEW_PACKAGES)
    result = check(client.post(f"/v1/models/{model_id}/predict", json={"texts": texts, "k": 5}))
    for text, labels in zip(texts, result["predictions"], strict=True):
        console.print(f"\n[bold]{text}[/]", no_wrap=True, overflow="ellipsis")
        print_ranking(labels, set())


def main() -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--keep-running", action="store_true", help="leave elmo serve running")
    args = parser.parse_args()

    port = free_port(args.port)
    url = f"http://127.0.0.1:{port}"
    console.print(f"[bold]1.[/] starting [cyan]elmo serve --port {port}[/]")
    serve = subprocess.Popen([*elmo_cmd(), "serve", "--port", str(port), "--log-level", "warning"])
    try:
        wait_ready(url, serve)
        key = subprocess.run(
            [*elmo_cmd(), "keys", "create", "--name", "demo"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)

        console.print("[bold]2.[/] uploading examples/debian-deps-mini")
        dataset = check(
            client.post(
                "/v1/datasets", files={"file": ("debian-deps-mini.tar.gz", dataset_archive())}
            )
        )
        console.print(
            f"   dataset {dataset['id']}: {dataset['num_train']} train / "
            f"{dataset['num_test']} test points, {dataset['num_labels']} labels"
        )

        config = {"epochs": args.epochs, "device": "cpu", "encoder": {"dim": args.dim}}
        console.print(f"[bold]3.[/] training: POST /v1/jobs {config}")
        job = check(
            client.post(
                "/v1/jobs", json={"dataset_id": dataset["id"], "config": config, "name": "demo"}
            )
        )
        job = watch(client, job["id"])
        if job["state"] != "succeeded":
            sys.exit(f"job {job['id']} {job['state']}: {job['failure_reason']}")

        history = check(client.get(f"/v1/jobs/{job['id']}/metrics"))
        model = check(client.get(f"/v1/models/{job['model_id']}"))
        served = model["metrics"]
        keys = ["P@1", "P@3", "P@5", "nDCG@5", "PSP@5"]
        splits = sorted({str(point.get("split")) for point in history})
        table = Table(title=f"{' / '.join(splits)} metrics per epoch ({job['id']})")
        table.add_column("epoch")
        for k in keys:
            table.add_column(k, justify="right")
        for point in history:
            row = [f"{point['metrics'][k]:.2f}" for k in keys]
            table.add_row(str(point["epoch"]), *row)
        if served.get("metrics"):
            table.add_row(
                f"served: epoch {served['epoch']}, {served['split']} split",
                *(f"{served['metrics'][k]:.2f}" for k in keys),
            )
        console.print(table)

        show_test_packages(client, job["model_id"])
        show_new_packages(client, job["model_id"])
        if args.keep_running:
            console.print(f"\nelmo serve keeps running at {url} (Ctrl-C to stop); your key: {key}")
            serve.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()


if __name__ == "__main__":
    main()
