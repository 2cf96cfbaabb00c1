"""docker-compose.yml for real: the README's compose flow against the stack it brings up.

Opt-in (`ELMO_COMPOSE_TEST=1`): it builds the image and starts API, CPU worker, Redis and
PostgreSQL in Docker, which takes minutes and a Docker engine that CI does not have. Run it once
per change to the Dockerfile, .dockerignore or docker-compose.yml and record the run in
docs/compose.md:

    ELMO_COMPOSE_TEST=1 python -m pytest -s -m compose tests/compose

Where `../shared/docker/standins.sh` exists (machines that reach no container registry) the test
runs `standins.sh up` first, builds through tests/compose/standins.override.yml and always runs
`standins.sh down` at the end; `ELMO_COMPOSE_STANDINS=0` uses the local Docker engine as it is.
The stack runs as compose project `elmo-ci`, its API published on 127.0.0.1 at a free port, with a
random PostgreSQL password from the environment; `docker compose down -v` removes it afterwards.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
OVERRIDE = Path(__file__).with_name("standins.override.yml")
MINI = REPO / "examples" / "debian-deps-mini"
PROJECT = "elmo-ci"
SERVICES = {"api", "worker-cpu", "redis", "postgres"}
ELMO_UID = "10001"
TINY_JOB = {
    "device": "cpu",
    "epochs": 2,
    "batch_size": 64,
    "threads": 1,
    "encoder": {"dim": 32},
    "data": {"max_train_points": 1000, "max_test_points": 200},
}
"""A job that trains in well under a minute on 2 cores (the README's job, capped)."""
BLOCK_RE = re.compile(r"```bash\n(.*?)```", re.S)

pytestmark = [
    pytest.mark.compose,
    pytest.mark.skipif(
        os.environ.get("ELMO_COMPOSE_TEST") != "1",
        reason="opt-in: set ELMO_COMPOSE_TEST=1 to build the image and run docker-compose.yml "
        "for real (minutes; needs a Docker engine; see docs/compose.md)",
    ),
]


@dataclass
class Step:
    """One recorded step of the run: what, how long, how it ended."""

    name: str
    seconds: float
    result: str


@dataclass
class Compose:
    """The running compose project: how to call `docker compose` on it, its URL, the record."""

    env: dict[str, str]
    files: list[Path]
    url: str
    steps: list[Step] = field(default_factory=list)

    def argv(self, *args: str) -> list[str]:
        """`docker compose -p elmo-ci -f docker-compose.yml [-f override] --profile cpu ARGS`."""
        files = [arg for path in [COMPOSE_FILE, *self.files] for arg in ("-f", str(path))]
        return ["docker", "compose", "-p", PROJECT, *files, "--profile", "cpu", *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker compose ARGS` on the project; with `check`, fail with its output and logs."""
        result = run(self.argv(*args), self.env, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(
                f"`docker compose {shlex.join(args)}` exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}\n{self.logs()}"
            )
        return result

    def logs(self) -> str:
        """The last lines each service logged (for failure messages)."""
        result = run(self.argv("logs", "--no-color", "--tail", "60"), self.env, timeout=60)
        return f"--- docker compose logs ---\n{result.stdout}{result.stderr}"

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step and record how it ended."""
        with record(self.steps, name):
            yield


@contextmanager
def record(steps: list[Step], name: str) -> Iterator[None]:
    """Append `name`'s duration and result ("ok" or the exception) to `steps`."""
    start = time.monotonic()
    try:
        yield
    except BaseException as exc:
        message = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        steps.append(Step(name, time.monotonic() - start, f"FAILED {type(exc).__name__} {message}"))
        raise
    steps.append(Step(name, time.monotonic() - start, "ok"))


def run(argv: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run argv from the repository root, capturing text output."""
    return subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def standins_script() -> Path | None:
    """../shared/docker/standins.sh (or $ELMO_COMPOSE_STANDINS) when it is to be used, else None."""
    chosen = os.environ.get("ELMO_COMPOSE_STANDINS")
    if chosen == "0":
        return None
    path = Path(chosen) if chosen else REPO.parent / "shared" / "docker" / "standins.sh"
    return path if path.is_file() else None


def exports(text: str) -> dict[str, str]:
    """The variables of `export NAME=VALUE` lines (what `standins.sh env` prints)."""
    found = {}
    for line in text.splitlines():
        if match := re.fullmatch(r"export (\w+)=(.*)", line.strip()):
            found[match[1]] = shlex.split(match[2])[0] if match[2] else ""
    return found


def readme_compose_commands() -> list[list[str]]:
    """The `docker compose` commands of the README's compose section, in order, as argv lists
    without the leading `docker compose` (comments dropped)."""
    text = (REPO / "README.md").read_text()
    section = text.split("<!-- section:compose -->")[1].split("<!-- /section:compose -->")[0]
    commands = []
    for block in BLOCK_RE.findall(section):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["docker", "compose"]:
                commands.append(words[2:])
    return commands


def readme_command(verb: str) -> list[str]:
    """The README's `docker compose VERB ...` command (argv after `docker compose`)."""
    found = [c for c in readme_compose_commands() if verb in c]
    assert found, f"the README's compose section has no `docker compose ... {verb}` command"
    return found[0]


def without_profile(words: list[str]) -> list[str]:
    """argv with `--profile cpu` removed (Compose.argv adds it in front)."""
    out, skip = [], False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word == "--profile" and i + 1 < len(words) and words[i + 1] == "cpu":
            skip = True
            continue
        out.append(word)
    return out


def ps(compose: Compose) -> list[dict]:
    """`docker compose ps --format json` as a list of containers (either output style)."""
    out = compose.run("ps", "--format", "json").stdout.strip()
    if out.startswith("["):
        return json.loads(out)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def mini_archive() -> bytes:
    """examples/debian-deps-mini as a .tar.gz, in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(MINI, arcname="debian-deps-mini")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def docker_env() -> Iterator[tuple[dict[str, str], list[Path], list[Step]]]:
    """The environment `docker compose` needs, the extra compose files, the step record.

    With the stand-ins: `standins.sh up` now and `standins.sh down` at the end, always. Without:
    skips unless a Docker engine and the compose v2 plugin answer.
    """
    steps: list[Step] = []
    env = {k: v for k, v in os.environ.items() if k != "ELMO_POSTGRES_PASSWORD"}
    script = standins_script()
    try:
        if script is None:
            if shutil.which("docker") is None:
                pytest.skip("no `docker` command (install Docker, or use standins.sh)")
            for argv, what in (
                (["docker", "info"], "no Docker engine answers `docker info`"),
                (["docker", "compose", "version"], "no compose v2 plugin (`docker compose`)"),
            ):
                if run(argv, env, timeout=60).returncode != 0:
                    pytest.skip(what)
            yield env, [], steps
            return
        if os.geteuid() != 0:
            pytest.skip(f"{script} starts dockerd and needs root")
        try:
            with record(steps, f"{script.name} up"):
                result = run(["bash", str(script), "up"], env, timeout=1500)
                assert result.returncode == 0, result.stdout + result.stderr
            env.update(exports(run(["bash", str(script), "env"], env, timeout=60).stdout))
            assert "ELMO_TORCH_INDEX_URL" in env, "standins.sh env printed no ELMO_TORCH_INDEX_URL"
            yield env, [OVERRIDE], steps
        finally:
            with record(steps, f"{script.name} down"):
                result = run(["bash", str(script), "down"], env, timeout=300)
                assert result.returncode == 0, result.stdout + result.stderr
    finally:
        report(steps)


def report(steps: list[Step]) -> None:
    """Print the record (visible with `pytest -s`); also as JSON to $ELMO_COMPOSE_RECORD."""
    if not steps:
        return
    lines = [f"{s.seconds:8.1f} s  {s.name}: {s.result}" for s in steps]
    total = sum(s.seconds for s in steps)
    print("\ncompose run record:\n" + "\n".join(lines) + f"\n{total:8.1f} s  total")
    if path := os.environ.get("ELMO_COMPOSE_RECORD"):
        Path(path).write_text(json.dumps([s.__dict__ for s in steps], indent=1) + "\n")


@pytest.fixture(scope="module")
def compose(docker_env: tuple[dict[str, str], list[Path], list[Step]]) -> Iterator[Compose]:
    """The stack, up and healthy: the README's `up` command (project `elmo-ci`, a free port on
    127.0.0.1, a random password in the environment); `docker compose down -v` afterwards."""
    env, files, steps = docker_env
    port = free_port()
    env = {**env, "ELMO_POSTGRES_PASSWORD": secrets.token_urlsafe(18), "ELMO_PORT": str(port)}
    stack = Compose(env, files, f"http://127.0.0.1:{port}", steps)
    try:
        up = without_profile(readme_command("up"))
        assert {"--build", "--wait"} <= set(up), up
        with stack.step(f"docker compose {shlex.join(readme_command('up'))}"):
            stack.run(*up, timeout=1800)
        yield stack
    finally:
        with record(steps, "docker compose down -v"):
            stack.run("down", "-v", "--remove-orphans", "--timeout", "30", timeout=300)


def test_compose_refuses_to_run_without_the_password(
    docker_env: tuple[dict[str, str], list[Path], list[Step]],
) -> None:
    """The PostgreSQL password is in no file: without ELMO_POSTGRES_PASSWORD compose stops."""
    env, files, steps = docker_env
    stack = Compose(env, files, "", steps)
    with stack.step("docker compose config (no ELMO_POSTGRES_PASSWORD): refused"):
        result = stack.run("config", "-q", check=False, timeout=60)
        assert result.returncode != 0
        assert "ELMO_POSTGRES_PASSWORD" in result.stderr, result.stderr
        rendered = run(
            stack.argv("config"), {**env, "ELMO_POSTGRES_PASSWORD": "pw-from-env"}, timeout=60
        )
        assert rendered.returncode == 0, rendered.stderr
        assert "POSTGRES_PASSWORD: pw-from-env" in rendered.stdout
        assert "PGPASSWORD: pw-from-env" in rendered.stdout
        text = COMPOSE_FILE.read_text()
        assert "elmo:elmo@" not in text
        for line in text.splitlines():
            if re.match(r"\s*(POSTGRES_PASSWORD|PGPASSWORD):", line):
                assert "${ELMO_POSTGRES_PASSWORD:?" in line, line


def test_the_stack_is_healthy_and_local(compose: Compose) -> None:
    """Every service reports healthy; the API is published on 127.0.0.1 only."""
    with compose.step("docker compose ps: 4 services healthy, API on 127.0.0.1 only"):
        containers = {c["Service"]: c for c in ps(compose)}
        assert set(containers) == SERVICES, containers
        for name, container in containers.items():
            assert container["State"] == "running", container
            assert container["Health"] == "healthy", (name, container, compose.logs())
        published = [p for p in containers["api"]["Publishers"] if p.get("PublishedPort")]
        assert published, containers["api"]
        assert {p["URL"] for p in published} == {"127.0.0.1"}, published
        ready = httpx.get(f"{compose.url}/readyz", timeout=10)
        assert ready.json() == {"status": "ok", "database": "ok", "broker": "ok"}, ready.text


def test_elmo_runs_as_non_root(compose: Compose) -> None:
    """API and worker containers: exec user and PID 1 are the image's `elmo` user (uid 10001)."""
    with compose.step("api and worker-cpu run as uid 10001, not root"):
        for service in ("api", "worker-cpu"):
            assert compose.run("exec", "-T", service, "id", "-u").stdout.strip() == ELMO_UID
            status = compose.run("exec", "-T", service, "cat", "/proc/1/status").stdout
            uids = re.search(r"^Uid:\s+(.*)$", status, re.M)
            assert uids and set(uids[1].split()) == {ELMO_UID}, (service, status)


def test_the_database_takes_only_the_password_from_the_environment(compose: Compose) -> None:
    """PostgreSQL accepts the password from ELMO_POSTGRES_PASSWORD over TCP, and not the old
    hard-coded one."""
    with compose.step("postgres: env password accepted, `elmo` rejected"):
        psql = ["psql", "-h", "127.0.0.1", "-U", "elmo", "-d", "elmo", "-tAc", "select 1"]
        good = compose.run(
            "exec", "-T", "-e", f"PGPASSWORD={compose.env['ELMO_POSTGRES_PASSWORD']}",
            "postgres", *psql,
        )  # fmt: skip
        assert good.stdout.strip() == "1"
        bad = compose.run("exec", "-T", "-e", "PGPASSWORD=elmo", "postgres", *psql, check=False)
        assert bad.returncode != 0 and "password authentication failed" in bad.stderr, bad


def test_the_readme_rest_flow(compose: Compose) -> None:
    """The README's flow over HTTP: a key from `docker compose exec`, upload, a small CPU job to
    `succeeded` on the worker-cpu container, its model, top-k predictions."""
    with compose.step(f"docker compose {shlex.join(readme_command('keys'))}"):
        key = compose.run(*without_profile(readme_command("keys"))).stdout.strip()
        assert re.fullmatch(r"\S{20,}", key), key
    client = httpx.Client(
        base_url=compose.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    with client:
        with compose.step("POST /v1/datasets (debian-deps-mini.tar.gz)"):
            archive = mini_archive()
            files = {"file": ("debian-deps-mini.tar.gz", archive, "application/gzip")}
            response = client.post("/v1/datasets", files=files)
            assert response.status_code == 201, response.text
            dataset = response.json()
            assert dataset["num_labels"] > 100 and dataset["num_train"] > 1000, dataset
        with compose.step("POST /v1/jobs (cpu, 2 epochs, capped) and wait for succeeded"):
            body = {"dataset_id": dataset["id"], "config": TINY_JOB, "name": "compose-test"}
            response = client.post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
            job = wait_job(client, response.json()["id"], compose)
            assert job["state"] == "succeeded", (job, compose.logs())
            assert job["progress"]["epoch"] == 2 and job["model_id"], job
            hostname = compose.run("exec", "-T", "worker-cpu", "cat", "/etc/hostname").stdout
            assert job["worker"].endswith("@" + hostname.strip()), job["worker"]
        with compose.step("GET /v1/models/{id}"):
            response = client.get(f"/v1/models/{job['model_id']}")
            assert response.status_code == 200, response.text
            model = response.json()
            assert model["job_id"] == job["id"] and model["num_labels"] == dataset["num_labels"]
        with compose.step("POST /v1/models/{id}/predict (2 texts, k=5)"):
            texts = [
                "python3-yamlparse: a Python 3 library for parsing YAML files",
                "ruby-jsonfast: a Ruby gem for parsing JSON",
            ]
            response = client.post(
                f"/v1/models/{model['id']}/predict", json={"texts": texts, "k": 5}
            )
            assert response.status_code == 200, response.text
            predictions = response.json()["predictions"]
            assert [len(p) for p in predictions] == [5, 5], predictions
            for ranked in predictions:
                scores = [p["score"] for p in ranked]
                assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores)[::-1]
                assert all(0 <= p["label_id"] < model["num_labels"] for p in ranked)
                assert all(isinstance(p["label"], str) and p["label"] for p in ranked)
                assert len({p["label_id"] for p in ranked}) == 5


def wait_job(client: httpx.Client, job_id: str, compose: Compose, timeout: float = 600) -> dict:
    """Poll GET /v1/jobs/{id} until the job ends; its last body (fails with logs on timeout)."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(2)
    pytest.fail(f"job {job_id} still {job.get('state')} after {timeout}s\n{compose.logs()}")
