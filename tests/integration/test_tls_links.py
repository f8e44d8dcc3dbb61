"""TLS on the node's links (issue 17 §3), against servers of the test's own: a CA made with openssl, a
PostgreSQL server with ``ssl = on`` that refuses plain connections, and a RabbitMQ node with only a TLS
listener. The node works over them with the peer verified (PostgreSQL ``sslmode=verify-full``, AMQPS with
the CA and a client certificate); a certificate with the wrong name or an expired one is refused: the
database at start-up in one line, the broker by a node that stays up and not ready."""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from exnode.v1 import exchange_pb2_grpc

from node.bootstrap import build, load_sample
from node.config import load_config
from node.ops.backup import POSTGRES_FILE, BackupError, backup
from node.ops.startup import check_broker
from node.pipeline import provider_batch
from tests.fault.support import CONSUMER, EXNODE, LOW_INCOME, PROVIDER, Key, as_proto, free_port, wait_until
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import grant_and_subscribe, register
from tests.integration.test_secrecy_at_rest import personal_record
from tests.integration.tls_servers import OpenSslCA, PostgresTLS, RabbitTLS


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> OpenSslCA:
    return OpenSslCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def postgres(ca: OpenSslCA) -> Iterator[PostgresTLS]:
    server = PostgresTLS(ca.issue("postgres-server"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def rabbit(ca: OpenSslCA) -> Iterator[RabbitTLS]:
    broker = RabbitTLS(ca, ca.issue("rabbit-server"))
    yield broker
    broker.close()


def write_config(data: Path, body: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "exnode.toml").write_text(body, encoding="utf-8")


def serve(data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*EXNODE, "serve", "--data", str(data), "--listen", f"127.0.0.1:{free_port()}",
                           "--metrics-listen", f"127.0.0.1:{free_port()}"], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("EXNODE_")})


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_the_node_stores_over_postgresql_verify_full_and_refuses_a_wrong_name_or_an_expired_certificate(
        ca: OpenSslCA, postgres: PostgresTLS, tmp_path: Path):
    data = tmp_path / "node"
    make_config(data)
    write_config(data, f'[database]\nurl = "{postgres.url()}"\ntls_ca = "{ca.cert}"\n')
    config = load_config(data, environ={})
    assert "sslmode=verify-full" in config.database_url and str(ca.cert) in config.database_url
    node = build(config, start_audit=False)
    try:
        assert load_sample(node) > 0  # migrations, the catalog import, the audit entry: all over TLS
        with node.uow() as uow:
            ssl_in_use = uow.connection.exec_driver_sql(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").scalar()
        assert ssl_in_use is True
    finally:
        node.close()

    write_config(data, f'[database]\nurl = "{postgres.url("127.0.0.1")}"\ntls_ca = "{ca.cert}"\n')
    line = one_line(serve(data))
    assert line.startswith("exnode serve: cannot start: database.url") and "does not match host name" in line, line

    postgres.restart_with(ca.issue("postgres-expired", days=-1))
    try:
        write_config(data, f'[database]\nurl = "{postgres.url()}"\ntls_ca = "{ca.cert}"\n')
        line = one_line(serve(data))
        assert "certificate verify failed" in line, line  # libpq names no reason
    finally:
        postgres.restart_with(ca.issue("postgres-server-again"))


@pytest.fixture(scope="module")
def postgres_cert_auth(ca: OpenSslCA) -> Iterator[PostgresTLS]:
    """A PostgreSQL server that admits only TLS clients with a certificate of the test CA naming the user."""
    server = PostgresTLS(ca.issue("postgres-cert-auth-server"), client_ca=ca.cert)
    yield server
    server.close()


def test_postgresql_with_a_client_certificate_stores_and_backs_up_over_tls_and_refuses_a_wrong_certificate(
        ca: OpenSslCA, postgres_cert_auth: PostgresTLS, tmp_path: Path):
    """``database.tls_cert``/``tls_key`` authenticate the node (``cert``: no password), the link is
    verify-full, and ``exnode backup`` (pg_dump) goes over the same TLS link; a client certificate of
    another CA, or none, is refused in one line, and so is a backup with it."""
    client = ca.issue("pg-client-postgres", san="DNS:exnode-node", client=True, cn="postgres")
    data = tmp_path / "node"
    make_config(data)

    def settings(cert: Path, key: Path) -> str:
        return (f'[node]\nid = "tlsdb"\n[database]\nurl = "{postgres_cert_auth.url()}"\ntls_ca = "{ca.cert}"\n'
                f'tls_cert = "{cert}"\ntls_key = "{key}"\n')

    write_config(data, settings(client.cert, client.key))
    config = load_config(data, environ={})
    assert "sslcert=" in config.database_url and "sslmode=verify-full" in config.database_url
    node = build(config, start_audit=False)
    try:
        assert load_sample(node) > 0
        with node.uow() as uow:
            ssl_in_use, client_dn = uow.connection.exec_driver_sql(
                "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").one()
        assert ssl_in_use is True and client_dn == "/CN=postgres"
    finally:
        node.close()
    outcome = backup(config, tmp_path / "backup")
    dump = tmp_path / "backup" / POSTGRES_FILE
    assert outcome.database_kind == "postgresql" and dump.stat().st_size > 0
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True).stdout
    assert "TABLE DATA public records" in listing and "TABLE DATA public data_keys" in listing

    stranger = OpenSslCA(tmp_path / "other-ca", name="some other CA")
    other = stranger.issue("pg-client-stranger", san="DNS:exnode-node", client=True, cn="postgres")
    write_config(data, settings(other.cert, other.key))
    line = one_line(serve(data))
    assert line.startswith("exnode serve: cannot start: database.url") and "unknown ca" in line, line
    with pytest.raises(BackupError) as caught:
        backup(load_config(data, environ={}), tmp_path / "backup-refused")
    assert "unknown ca" in str(caught.value), caught.value

    write_config(data, f'[database]\nurl = "{postgres_cert_auth.url()}"\ntls_ca = "{ca.cert}"\n')  # no client cert
    line = one_line(serve(data))
    assert "database.url" in line and "client certificate" in line, line


def test_records_are_relayed_over_amqps_with_a_client_certificate_and_a_wrong_name_is_refused_not_fatal(
        ca: OpenSslCA, rabbit: RabbitTLS, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    client = ca.issue("exnode-node", san="DNS:exnode-node", client=True)
    data = tmp_path / "node"
    config = make_config(data)
    (data / "platforms.toml").write_text(
        f'[[platform]]\nname = "hhht"\nkind = "regional"\nconsumer_code = "{CONSUMER}"\n', encoding="utf-8")
    write_config(data, f'[rabbitmq]\nurl = "{rabbit.url()}"\ntls_ca = "{ca.cert}"\ntls_cert = "{client.cert}"\n'
                       f'tls_key = "{client.key}"\n')
    loaded = load_config(data, environ={})
    assert "ssl_options" in loaded.rabbitmq.url and check_broker(loaded.rabbitmq.url) is True
    config = replace(config, rabbitmq=loaded.rabbitmq, node=replace(config.node, id=f"t{uuid.uuid4().hex[:10]}"),
                     exchange=replace(config.exchange, dispatch_process=False))
    running = RunningNode(config)
    try:
        load_sample(running.node)
        running.node.start_dispatcher()
        key = Key()
        register(running, key)
        grant_and_subscribe(running, ("hhht",))
        provider = exchange_pb2_grpc.ExchangeServiceStub(running.channel_as(PROVIDER, ["provider"]))
        provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, [personal_record(n) for n in (1, 2, 3)], key)))
        queue = f"exnode.{config.node.id}.out.hhht"
        with pika.BlockingConnection(pika.URLParameters(loaded.rabbitmq.url)) as connection:
            channel = connection.channel()
            wait_until(lambda: channel.queue_declare(queue, passive=True).method.message_count == 3, 30,
                       "three messages on the TLS broker's queue")
    finally:
        running.close()

    wrong = load_config(data, environ={"EXNODE_RABBITMQ_URL": rabbit.url("127.0.0.1")})
    with caplog.at_level(logging.WARNING):
        assert check_broker(wrong.rabbitmq.url) is False  # not fatal: the node serves, not ready
    assert "does not answer" in caplog.text and "certificate is not valid for '127.0.0.1'" in caplog.text
