"""The image, for real: the Dockerfile is built by a Docker engine on this machine and the container run
against the local broker and database. Image registries cannot be reached, so the base image is made from
Debian's packages (ops/container/local-base.sh: mmdebstrap of bookworm with its python3) and passed as
``--build-arg BASE``; the engine is Debian's docker.io (ops/container/ci-engine.sh installs and starts it).
The container must report healthy through its own HEALTHCHECK, and ``exnode health`` inside it must say the
node is ready. An engine that cannot start fails this test with its reason; it does not skip.

Cost here: the base ~3.5-5.5 min the first time (mmdebstrap; cached as the image exnode-base:bookworm
afterwards), the build ~2.5-3.5 min (its layers cached after), the run ~30 s."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.fault.support import free_port

ROOT = Path(__file__).resolve().parents[2]
BASE = "exnode-base:bookworm"
IMAGE = "exnode:test"

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def run(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def must(*args: str, timeout: float = 1200) -> str:
    done = run(*args, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.timeout(1800)
def test_the_built_image_serves_reports_healthy_and_answers_exnode_health(postgres_url: str):
    timings: dict[str, float] = {}
    started = time.monotonic()
    must("bash", "ops/container/ci-engine.sh", timeout=300)
    timings["engine_s"] = time.monotonic() - started
    print(f"\nimage: engine_s={timings['engine_s']:.0f}", flush=True)
    started = time.monotonic()
    must("bash", "ops/container/local-base.sh", BASE, timeout=1500)
    timings["base_s"] = time.monotonic() - started
    print(f"\nimage: base_s={timings['base_s']:.0f}", flush=True)
    started = time.monotonic()
    must("bash", "ops/container/wheelhouse.sh", timeout=600)  # the containers reach no package index here
    must("docker", "build", "--network", "host", "--build-arg", f"BASE={BASE}", "-t", IMAGE, ".", timeout=1500)
    timings["build_s"] = time.monotonic() - started
    print(f"\nimage: build_s={timings['build_s']:.0f}", flush=True)

    port = free_port()
    name = f"exnode-test-{uuid.uuid4().hex[:8]}"
    database = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    started = time.monotonic()
    must("docker", "run", "-d", "--name", name, "--network", "host",
         "-e", f"EXNODE_NODE_ID=i{uuid.uuid4().hex[:8]}", "-e", f"EXNODE_DATABASE_URL={database}",
         "-e", f"EXNODE_SERVER_LISTEN=127.0.0.1:{port}", "-e", f"EXNODE_SERVER_METRICS_LISTEN=127.0.0.1:{free_port()}",
         "-e", f"EXNODE_CONSOLE_LISTEN=127.0.0.1:{free_port()}",  # the host's network: 8080 may be taken
         "--health-interval", "2s", "--health-start-period", "60s", IMAGE, timeout=120)
    try:
        deadline = time.monotonic() + 180
        state: dict = {}
        while time.monotonic() < deadline:
            state = json.loads(must("docker", "inspect", "--format", "{{json .State}}", name, timeout=60))
            if not state.get("Running"):
                break
            if (state.get("Health") or {}).get("Status") == "healthy":
                break
            time.sleep(1)
        logs = run("docker", "logs", "--tail", "30", name, timeout=60)
        assert (state.get("Health") or {}).get("Status") == "healthy", \
            f"the container is not healthy: {json.dumps(state)[:1500]}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}"
        timings["healthy_after_s"] = time.monotonic() - started
        user = must("docker", "exec", name, "id", "-u", timeout=60).strip()
        assert user == "10001", f"the container runs as uid {user}"
        # healthy (the image's check: the node answers) comes before ready (the dispatcher's broker link too)
        deadline = time.monotonic() + 90
        while True:
            health = run("docker", "exec", name, "exnode", "health", "--server", f"127.0.0.1:{port}", timeout=60)
            if health.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        logs = run("docker", "logs", "--tail", "20", name, timeout=60)
        assert health.returncode == 0, health.stdout + health.stderr + logs.stdout[-2000:] + logs.stderr[-2000:]
        timings["ready_after_s"] = time.monotonic() - started
        assert "readiness" in health.stdout and "NOT_SERVING" not in health.stdout, health.stdout
        stopped = run("docker", "stop", "--time", "20", name, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        exit_code = must("docker", "inspect", "--format", "{{.State.ExitCode}}", name, timeout=60).strip()
        assert exit_code == "0", f"SIGTERM did not stop the node cleanly: exit {exit_code}"
        print("\nimage: " + " ".join(f"{key}={value:.0f}" for key, value in timings.items()))
    finally:
        run("docker", "rm", "-f", name, timeout=60)
