"""The Dockerfile and ops/compose.yaml, checked without a Docker engine (none runs on the development
machine or in CI):

- ops/compose.yaml is parsed by a strict Compose-spec parser (compose-spec, bindings of the Rust
  compose_spec crate: unknown keys, bad durations, bad conditions are errors), and its wiring is checked
  here: every service has an image or a build and a health check, depends_on names services that have
  health checks, volumes are declared, bind-mounted files exist, and each node's mounted config loads
  with the node's own config loader and matches the broker's vhost, user and password and the database
  that PostgreSQL's init script creates.
- The image's build stage is repeated in a temporary virtualenv: the Dockerfile's COPY steps copy the same
  paths, its RUN steps run (paths mapped to temporary directories, pip's cache allowed), and the result
  runs `exnode --help` and the image's own CMD (ops/container/start.sh: `exnode init`, then serve) until
  the image's HEALTHCHECK script reports SERVING.

Not reproduced: the runtime stage's apt-get/useradd step and the base images themselves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from compose_spec import PyCompose
from sqlalchemy.engine import make_url

from node.bootstrap import load_node_platforms
from node.config import load_config

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
NODES = ("ministry", "region", "department")
HIERARCHY = {"department": "region", "region": "ministry"}
"""Each node's upper tier: department → region → ministry."""


# -- Dockerfile -----------------------------------------------------------------------------------------
@dataclass
class Stage:
    base: str
    name: str
    steps: list[tuple[str, str]] = field(default_factory=list)
    """(INSTRUCTION, arguments) in order, continuation lines joined."""

    def args(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.steps if name == instruction]


def dockerfile_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction, arguments = instruction.upper(), arguments.strip()
        if instruction == "FROM":
            parts = arguments.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""))
        elif instruction == "ARG" and not stages:  # a build argument of the FROM lines (ARG BASE)
            continue
        else:
            assert stages, f"{instruction} before FROM"
            stages[-1].steps.append((instruction, arguments))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_the_image_is_multi_stage_non_root_with_a_health_check(stages: list[Stage]):
    assert len(stages) >= 2 and stages[0].name, "a named build stage and a runtime stage"
    runtime = stages[-1]
    copies = runtime.args("COPY")
    assert any(c.startswith(f"--from={stages[0].name} ") for c in copies), "the runtime takes the build's venv"
    assert not runtime.args("RUN") or all("pip install" not in r for r in runtime.args("RUN")), \
        "nothing is built in the runtime stage"
    users = runtime.args("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    health = runtime.args("HEALTHCHECK")
    assert health and "healthcheck.py" in health[-1], health
    for copy in copies:
        if copy.startswith("--"):
            continue
        *sources, _destination = shlex.split(copy)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignored and ".git" in ignored and ".exnode" in ignored


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(240)
def test_the_image_build_steps_install_a_node_that_starts_and_reports_healthy(stages: list[Stage], tmp_path: Path):
    build = stages[0]
    source, wheels, venv = tmp_path / "src", tmp_path / "wheels", tmp_path / "opt-exnode"
    source.mkdir()
    workdir = build.args("WORKDIR")[-1]
    assert workdir == "/src", "the mapping below assumes the build stage works in /src"
    outside: dict[str, str] = {}
    """Absolute COPY destinations (the wheelhouse) → where they are here."""
    for copy in build.args("COPY"):
        *sources, destination = shlex.split(copy)
        for name in sources:  # `COPY a b ./` copies into the workdir; `COPY dir dir` copies the tree
            target = source / name if destination in ("./", ".") else source / destination
            if destination.startswith("/"):
                target = tmp_path / "image-root" / destination.lstrip("/")
                outside[destination] = str(target)
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / name, target)
    mapped = {"/wheels": str(wheels), "/opt/exnode": str(venv), **outside}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PIP_NO_CACHE_DIR", None)  # the image keeps no cache; here the cache makes the test fast
    for run in build.args("RUN"):
        command = run
        for path, local in mapped.items():
            command = command.replace(path, local)
        done = subprocess.run(["sh", "-c", command], cwd=source, env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, f"RUN {run}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    exnode = venv / "bin" / "exnode"
    help_ = subprocess.run([exnode, "--help"], capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0 and "backup" in help_.stdout and "restore" in help_.stdout, help_.stderr

    # The image's CMD and HEALTHCHECK, with the image's paths mapped to this venv.
    scripts = venv / "scripts"
    scripts.mkdir()
    for name in ("start.sh", "healthcheck.py"):
        shutil.copy2(OPS / "container" / name, scripts / name)
    listen = f"127.0.0.1:{free_port()}"
    node_env = {key: value for key, value in os.environ.items() if not key.startswith("EXNODE_")}
    node_env.update(PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin", EXNODE_DATA=str(tmp_path / "data"),
                    EXNODE_NODE_ID=f"t{uuid.uuid4().hex[:10]}", EXNODE_SERVER_LISTEN=listen,
                    EXNODE_SERVER_METRICS_LISTEN=f"127.0.0.1:{free_port()}",
                    EXNODE_EXCHANGE_DISPATCH="false",  # no broker queues for a throwaway node id
                    EXNODE_CONSOLE_LISTEN="127.0.0.1:0")  # the console's 8080 is for make run
    log = (tmp_path / "start.log").open("w")
    node = subprocess.Popen([scripts / "start.sh"], env=node_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            probe = subprocess.run([venv / "bin" / "python", scripts / "healthcheck.py"], env=node_env,
                                   capture_output=True, text=True, timeout=30)
            if probe.returncode == 0:
                break
            assert node.poll() is None, f"start.sh exited {node.returncode}: {(tmp_path / 'start.log').read_text()}"
            assert time.monotonic() < deadline, f"not healthy in 90 s: {probe.stderr}"
            time.sleep(0.5)
        assert "SERVING" in probe.stdout
        assert (tmp_path / "data" / "keys").stat().st_mode & 0o077 == 0, "keys/ readable by others"
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(30)
        log.close()
    assert node.returncode == 0, (tmp_path / "start.log").read_text()
    unhealthy = subprocess.run([venv / "bin" / "python", scripts / "healthcheck.py"], env=node_env,
                               capture_output=True, text=True, timeout=30)
    assert unhealthy.returncode == 1 and unhealthy.stderr.count("\n") == 1, "a stopped node is not healthy"


# -- ops/compose.yaml -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    parsed = PyCompose.from_yaml((OPS / "compose.yaml").read_text(encoding="utf-8"))  # raises on any spec error
    parsed.validate()
    return parsed.to_dict()


def test_a_compose_spec_error_is_caught():
    """The parser is strict, so passing it means something (a typo in a key, a bad duration)."""
    with pytest.raises(ValueError, match="heathcheck"):
        PyCompose.from_yaml("services:\n  a:\n    image: x\n    heathcheck: {test: [CMD, x]}\n")
    with pytest.raises(ValueError, match="duration"):
        PyCompose.from_yaml("services:\n  a:\n    image: x\n    healthcheck: {test: [CMD, x], interval: 10q}\n")


def volume_sources(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        out.append((source, target))
    return out


def test_compose_runs_the_broker_the_database_and_three_nodes_each_healthy_before_its_dependents(compose: dict):
    services = compose["services"]
    assert set(services) == {"rabbitmq", "postgres", *NODES}
    dockerfile_healthcheck = "HEALTHCHECK" in (ROOT / "Dockerfile").read_text(encoding="utf-8")
    builders = [name for name, s in services.items() if "build" in s]
    assert len(builders) == 1, "one service builds the image, the others reuse it"
    build = services[builders[0]]["build"]
    context = (OPS / build["context"]).resolve()
    assert context == ROOT and (context / build.get("dockerfile", "Dockerfile")).is_file()
    image = services[builders[0]]["image"]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        healthy = "healthcheck" in service or (service.get("image") == image and dockerfile_healthcheck)
        assert healthy, f"{name} has no health check"
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert how["condition"] == "service_healthy", f"{name} → {dependency}: start only when healthy"
    for node in NODES:
        assert services[node]["image"] == image
        assert {"postgres", "rabbitmq"} <= set(services[node]["depends_on"]), node
    for lower, upper in HIERARCHY.items():
        assert upper in services[lower]["depends_on"], f"{lower} reports to {upper}"

    declared = set(compose.get("volumes", {}))
    data_volumes = {}
    for name, service in services.items():
        for source, target in volume_sources(service):
            if source.startswith((".", "/")):
                assert (OPS / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
            if target == "/var/lib/exnode/data":
                data_volumes[name] = source
    assert set(data_volumes) == set(NODES) and len(set(data_volumes.values())) == 3, data_volumes


def rabbit_password_matches(password_hash: str, password: str) -> bool:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt4 || sha256(salt4 || password))."""
    raw = base64.b64decode(password_hash)
    return hashlib.sha256(raw[:4] + password.encode()).digest() == raw[4:]


def test_each_node_has_its_own_config_vhost_user_and_database(compose: dict):
    services = compose["services"]
    rabbit_mounts = dict((target, source) for source, target in volume_sources(services["rabbitmq"]))
    plugins = (OPS / rabbit_mounts["/etc/rabbitmq/enabled_plugins"]).read_text(encoding="utf-8")
    for plugin in ("rabbitmq_federation", "rabbitmq_shovel", "rabbitmq_prometheus"):
        assert re.search(rf"\b{plugin}\b", plugins), f"{plugin} is not enabled"
    assert plugins.strip().startswith("[") and plugins.strip().endswith("]."), "an Erlang list term"
    definitions = json.loads((OPS / rabbit_mounts["/etc/rabbitmq/definitions.json"]).read_text(encoding="utf-8"))
    conf = next(s for t, s in rabbit_mounts.items() if t.startswith("/etc/rabbitmq/conf.d/"))
    assert "load_definitions = /etc/rabbitmq/definitions.json" in (OPS / conf).read_text(encoding="utf-8")
    users = {u["name"]: u for u in definitions["users"]}
    vhosts = {v["name"] for v in definitions["vhosts"]}
    permissions = {(p["user"], p["vhost"]): p for p in definitions["permissions"]}
    init_sql = (OPS / dict((t, s) for s, t in volume_sources(services["postgres"]))[
        "/docker-entrypoint-initdb.d/10-exnode.sql"]).read_text(encoding="utf-8")

    seen_vhosts = set()
    for node in NODES:
        mounts = dict((target, source) for source, target in volume_sources(services[node]))
        config_dir = OPS / mounts["/etc/exnode"]
        config = load_config(config_dir, environ={})  # the node's own loader: unknown keys are errors
        assert config.node.id == node
        for lower, upper in HIERARCHY.items():
            if node == lower:
                queues = {p.queue for p in load_node_platforms(config)}
                assert queues == {f"exnode.{node}.out.{upper}"}, f"{node} relays to {upper}: {queues}"

        broker = make_url(config.rabbitmq.url.replace("amqp://", "postgresql://", 1))  # same URL grammar
        assert broker.host == "rabbitmq" and broker.database == node, f"{node} uses its own vhost"
        assert broker.database in vhosts and broker.database not in seen_vhosts
        seen_vhosts.add(broker.database)
        user = users[broker.username]
        assert rabbit_password_matches(user["password_hash"], broker.password), f"{node}: broker password"
        allowed = permissions[(broker.username, node)]
        for queue in (f"exnode.{node}.in", f"exnode.{node}.out.x", f"exnode.{node}.dlx"):
            assert all(re.match(allowed[kind], queue) for kind in ("configure", "write", "read")), queue
        assert re.match(allowed["write"], "amq.default"), "the dispatcher publishes through the default exchange"
        assert not any(u == broker.username and v != node for u, v in permissions), f"{node} sees another vhost"

        database = make_url(config.database_url)
        assert database.host == "postgres" and database.database == node
        assert f"CREATE ROLE {database.username} LOGIN PASSWORD '{database.password}';" in init_sql
        assert f"CREATE DATABASE {node} OWNER {database.username};" in init_sql
