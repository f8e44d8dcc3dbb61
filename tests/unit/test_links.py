"""TLS settings become part of the broker and database URLs, and a node that does not trust the development
issuer refuses plain links off this machine unless server.allow_plain_links says so (issue 17 §3)."""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from node.config import ConfigError, load_config
from node.ops.startup import StartupError, check_links, plain_links


def config(tmp_path: Path, **environ: str):
    return load_config(tmp_path, environ={f"EXNODE_{k.upper()}": v for k, v in environ.items()})


def test_broker_tls_settings_become_the_url_s_ssl_options(tmp_path: Path):
    loaded = config(tmp_path, rabbitmq_url="amqps://u:p@mq.example.gov.cn:5671/%2F?heartbeat=30",
                    rabbitmq_tls_ca="trust/ca.pem", rabbitmq_tls_cert="/etc/exnode/node.pem",
                    rabbitmq_tls_key="/etc/exnode/node.key")
    query = parse_qs(urlsplit(loaded.rabbitmq.url).query)
    options = ast.literal_eval(query["ssl_options"][0])
    assert options == {"server_hostname": "mq.example.gov.cn", "ca_certs": str(tmp_path / "trust/ca.pem"),
                       "certfile": "/etc/exnode/node.pem", "keyfile": "/etc/exnode/node.key"}
    assert query["heartbeat"] == ["30"]


def test_database_tls_settings_make_the_link_verify_full(tmp_path: Path):
    loaded = config(tmp_path, database_url="postgresql://exnode@db.example.gov.cn/exnode?sslmode=disable",
                    database_tls_ca="/etc/exnode/db-ca.pem")
    query = parse_qs(urlsplit(loaded.database_url).query)
    assert query == {"sslmode": ["verify-full"], "sslrootcert": ["/etc/exnode/db-ca.pem"]}
    assert plain_links(loaded) == []


@pytest.mark.parametrize(("environ", "words"), [
    ({"rabbitmq_url": "amqp://mq:5672/", "rabbitmq_tls_ca": "ca.pem"}, "need an amqps://"),
    ({"rabbitmq_url": "amqps://mq/", "rabbitmq_tls_cert": "c.pem"}, "go together"),
    ({"database_tls_ca": "ca.pem"}, "need a postgresql://"),
])
def test_tls_settings_that_cannot_apply_are_config_errors(tmp_path: Path, environ: dict, words: str):
    with pytest.raises(ConfigError, match=words):
        config(tmp_path, **environ)


def test_a_production_node_refuses_plain_links_off_this_machine_unless_allowed(tmp_path: Path,
                                                                                caplog: pytest.LogCaptureFixture):
    remote = {"rabbitmq_url": "amqp://u:p@10.1.2.3:5672/%2F", "database_url": "postgresql://exnode@db.example/exnode"}
    with pytest.raises(StartupError) as caught:
        check_links(config(tmp_path, **remote))
    message = str(caught.value)
    assert "rabbitmq.url reaches 10.1.2.3 over plain AMQP" in message and "database.url reaches db.example" in message
    assert "server.allow_plain_links" in message
    check_links(config(tmp_path, **remote, server_allow_plain_links="true"))
    assert "starting with plain links" in caplog.text
    check_links(config(tmp_path, **remote, auth_trust_dev_issuer="true"))  # development: allowed
    check_links(config(tmp_path, rabbitmq_url="amqp://guest:guest@localhost:5672/",
                       database_url="postgresql://exnode@127.0.0.1/exnode"))  # loopback: allowed
    check_links(config(tmp_path, database_url="postgresql://exnode@/exnode?host=/var/run/postgresql"))


def test_every_broker_of_the_cluster_and_every_host_of_a_multi_host_database_url_is_checked(tmp_path: Path):
    """A cluster's second broker or a standby database off this machine is a plain link too."""
    links = plain_links(config(tmp_path, rabbitmq_url="amqp://u:p@127.0.0.1:5672/%2F",
                               rabbitmq_urls="amqp://u:p@127.0.0.1:5673/%2F,amqp://u:p@mq2.example:5672/%2F",
                               database_url="postgresql://exnode@/exnode?host=127.0.0.1:5432&host=10.0.0.2:5432"))
    assert links == ["rabbitmq.url reaches mq2.example over plain AMQP (use amqps:// and rabbitmq.tls_ca)",
                     "database.url reaches 10.0.0.2 without sslmode=verify-full (set database.tls_ca)"]
    with pytest.raises(StartupError, match="mq2.example"):
        check_links(config(tmp_path, rabbitmq_urls="amqp://u:p@mq2.example:5672/%2F"))
    assert plain_links(config(tmp_path, database_url="postgresql://exnode@/exnode?host=127.0.0.1:5432"
                                                     "&host=[::1]:5433&host=/var/run/postgresql")) == []


def test_a_production_node_refuses_a_grpc_port_beyond_loopback_without_tls(tmp_path: Path):
    with pytest.raises(StartupError, match="the gRPC port listens on 0.0.0.0 without TLS"):
        check_links(config(tmp_path, server_listen="0.0.0.0:50051"))
    with pytest.raises(StartupError, match="listens on 10.0.0.5 without TLS"):
        check_links(config(tmp_path), "10.0.0.5:50051")  # exnode serve --listen
    check_links(config(tmp_path, server_listen="0.0.0.0:50051", server_tls_cert="c.pem", server_tls_key="k.pem"))
    check_links(config(tmp_path, server_listen="[::1]:50051"))
