"""`exnode serve` that cannot start says why in one line naming the key or file, and exits 1 (issue 7,
"Bad input and faults"): a wrong config value, a missing or unreadable key file, a database that
refuses connections, a broker that refuses the credentials."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fault.support import EXNODE, exnode, free_port


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("startup") / "node"
    result = exnode("init", "--data", str(data), "--dev")
    assert result.returncode == 0, result.stderr
    return data


def serve(data: Path, **environ: str) -> subprocess.CompletedProcess:
    """Runs to its end: every case here must fail at start-up (a node that serves would time out)."""
    return subprocess.run([*EXNODE, "serve", "--data", str(data), "--listen", f"127.0.0.1:{free_port()}",
                           "--metrics-listen", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **environ})


def assert_one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]  # JSON log lines aside
    assert len(errors) == 1, result.stderr
    [line] = errors
    assert line.startswith("exnode serve: cannot start: ") and "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in line, line
    return line


def copy_of(data: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "node"
    subprocess.run(["cp", "-a", str(data), str(copy)], check=True)
    return copy


def test_a_wrong_config_value_names_the_key_and_the_file(initialised: Path, tmp_path: Path):
    data = copy_of(initialised, tmp_path)
    config = data / "exnode.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("window = 1000", 'window = "wide"'), encoding="utf-8")
    assert 'window = "wide"' in config.read_text(encoding="utf-8"), "the default config changed: edit this test"
    assert_one_line_error(serve(data), "exchange.window", str(config), "'wide'")


def test_a_wrong_environment_override_names_the_variable(initialised: Path):
    assert_one_line_error(serve(initialised, EXNODE_AUDIT_RETENTION_DAYS="30"), "audit.retention_days", "180",
                          "EXNODE_AUDIT_RETENTION_DAYS")
    assert_one_line_error(serve(initialised, EXNODE_EXCHANGE_WINDOW="wide"), "EXNODE_EXCHANGE_WINDOW", "'wide'")


def test_a_missing_signing_key_file_is_named(initialised: Path, tmp_path: Path):
    data = copy_of(initialised, tmp_path)
    [key] = (data / "keys").glob("node-*.key.pem")
    key.unlink()
    assert_one_line_error(serve(data), str(key), "missing")


def test_an_unreadable_signing_key_file_is_named(initialised: Path, tmp_path: Path):
    data = copy_of(initialised, tmp_path)
    [key] = (data / "keys").glob("node-*.key.pem")
    key.unlink()
    key.mkdir()  # unreadable as a file even for root, who ignores permission bits
    assert_one_line_error(serve(data), str(key), "unreadable")


def test_a_missing_key_encryption_key_is_named(initialised: Path, tmp_path: Path):
    """Records at rest are sealed under data keys only the KEK unwraps: without it the node cannot start."""
    data = copy_of(initialised, tmp_path)
    [kek] = (data / "keys").glob("kek-*.key")
    kek.unlink()
    assert_one_line_error(serve(data), str(kek), "key-encryption key", "missing")
    (data / "keys" / "kek.json").unlink()
    assert_one_line_error(serve(data), "kek.json", "exnode init")


def test_a_production_node_refuses_a_plain_broker_link_off_this_machine(initialised: Path):
    line = assert_one_line_error(serve(initialised, EXNODE_AUTH_TRUST_DEV_ISSUER="false",
                                       EXNODE_RABBITMQ_URL="amqp://guest:guest@192.0.2.7:5672/%2F"),
                                 "rabbitmq.url reaches 192.0.2.7 over plain AMQP", "server.allow_plain_links")
    assert "amqps://" in line


def test_a_production_node_refuses_a_plain_database_link_or_a_plain_second_broker_off_this_machine(
        initialised: Path):
    assert_one_line_error(serve(initialised, EXNODE_AUTH_TRUST_DEV_ISSUER="false",
                                EXNODE_DATABASE_URL="postgresql://exnode@192.0.2.8/exnode"),
                          "database.url reaches 192.0.2.8 without sslmode=verify-full", "server.allow_plain_links")
    assert_one_line_error(serve(initialised, EXNODE_AUTH_TRUST_DEV_ISSUER="false",
                                EXNODE_RABBITMQ_URLS="amqp://guest:guest@192.0.2.9:5672/%2F"),
                          "rabbitmq.url reaches 192.0.2.9 over plain AMQP")


def test_a_missing_trusted_issuer_key_file_is_named(initialised: Path, tmp_path: Path):
    data = copy_of(initialised, tmp_path)
    assert_one_line_error(serve(data, EXNODE_AUTH_JWKS_FILE="trust/iam-jwks.json", EXNODE_AUTH_ISSUERS="https://iam"),
                          "trust/iam-jwks.json")


@pytest.mark.postgres
def test_a_database_that_refuses_connections_is_named_without_its_password(initialised: Path):
    port = free_port()  # nothing listens there
    line = assert_one_line_error(serve(initialised, EXNODE_DATABASE_URL=f"postgresql://exnode:s3cret@127.0.0.1:{port}/x"),
                                 "database.url", f"127.0.0.1:{port}", "refused")
    assert "s3cret" not in line


@pytest.mark.rabbitmq
def test_a_broker_that_refuses_the_credentials_is_named_without_the_password(initialised: Path):
    line = assert_one_line_error(serve(initialised, EXNODE_RABBITMQ_URL="amqp://guest:not-the-password@127.0.0.1:5672/%2F"),
                                 "rabbitmq.url", "guest@127.0.0.1:5672", "refused the credentials")
    assert "not-the-password" not in line


def test_a_metrics_port_in_use_is_named(initialised: Path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([*EXNODE, "serve", "--data", str(initialised), "--listen", f"127.0.0.1:{free_port()}",
                                 "--metrics-listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    assert_one_line_error(result, "server.metrics_listen", f"127.0.0.1:{port}")
