"""Mutual TLS on the gRPC port: a client certificate of the configured CA is required, then the bearer token.

The CA, the server certificate (SAN IP 127.0.0.1 and DNS localhost) and the client certificates are made here
with cryptography.x509 and written into the node's data directory, as an operator would.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from exnode.v1 import catalog_pb2 as pb
from exnode.v1 import catalog_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.config import ConfigError
from node.grpc.server import server_credentials
from node.storage.audit_repository import AuditFilter
from tests.conftest import PROVIDER
from tests.integration.grpc_node import RunningNode, make_config

TIMEOUT = 5


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "民政部"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(ca: Issued, common_name: str, *, server: bool) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    client: Issued
    stranger: Issued
    """A client certificate from a CA the node does not trust."""


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = make_ca("exnode test CA")
    other_ca = make_ca("some other CA")
    return Pki(ca, issue(ca, "exnode node", server=True), issue(ca, "platform client", server=False),
               issue(other_ca, "platform client", server=False))


@pytest.fixture
def running(tmp_path: Path, pki: Pki) -> Iterator[RunningNode]:
    data_dir = tmp_path / "node"
    config = make_config(data_dir)
    tls = data_dir / "tls"
    tls.mkdir()
    (tls / "ca.pem").write_bytes(pki.ca.cert_pem)
    (tls / "server.pem").write_bytes(pki.server.cert_pem)
    (tls / "server.key").write_bytes(pki.server.key_pem)
    server = replace(config.server, tls_cert="tls/server.pem", tls_key="tls/server.key",
                     tls_client_ca="tls/ca.pem")
    config = replace(config, server=server)
    node = RunningNode(config)
    yield node
    node.close()


def list_call(channel: grpc.Channel, running: RunningNode, **metadata: str) -> pb.ListResourcesResponse:
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    return stub.ListResources(pb.ListResourcesRequest(), timeout=TIMEOUT, metadata=[
        ("authorization", f"Bearer {running.token(PROVIDER, ['consumer'], subject='tls.client')}"),
        *metadata.items()])


def failure(channel: grpc.Channel, running: RunningNode) -> grpc.RpcError:
    with channel, pytest.raises(grpc.RpcError) as caught:
        list_call(channel, running)
    return caught.value


def test_client_with_a_certificate_of_the_ca_gets_through(running, pki):
    credentials = grpc.ssl_channel_credentials(pki.ca.cert_pem, pki.client.key_pem, pki.client.cert_pem)
    with grpc.secure_channel(running.address, credentials) as channel:
        answer = list_call(channel, running, **{"x-request-id": "tls-req-0001"})
    assert answer.total_size == 0
    entries = running.node.audit.query(AuditFilter(subject="tls.client")).entries
    assert [(e.record.result, e.record.request_id) for e in entries] == [("OK", "tls-req-0001")]


def test_server_certificate_names_localhost_too(running, pki):
    credentials = grpc.ssl_channel_credentials(pki.ca.cert_pem, pki.client.key_pem, pki.client.cert_pem)
    with grpc.secure_channel(f"localhost:{running.port}", credentials) as channel:
        assert list_call(channel, running).total_size == 0


def test_client_without_a_certificate_is_refused(running, pki):
    credentials = grpc.ssl_channel_credentials(pki.ca.cert_pem)  # no client certificate
    error = failure(grpc.secure_channel(running.address, credentials), running)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert running.node.audit.query(AuditFilter()).entries == []


def test_client_certificate_of_another_ca_is_refused(running, pki):
    credentials = grpc.ssl_channel_credentials(pki.ca.cert_pem, pki.stranger.key_pem, pki.stranger.cert_pem)
    error = failure(grpc.secure_channel(running.address, credentials), running)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert running.node.audit.query(AuditFilter()).entries == []


def test_plaintext_client_is_refused(running):
    error = failure(grpc.insecure_channel(running.address), running)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert running.node.audit.query(AuditFilter()).entries == []


def test_client_that_does_not_trust_the_server_is_refused(running, pki):
    other = make_ca("a CA the client trusts instead")
    credentials = grpc.ssl_channel_credentials(other.cert_pem, pki.client.key_pem, pki.client.cert_pem)
    error = failure(grpc.secure_channel(running.address, credentials), running)
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_still_needs_the_bearer_token(running, pki):
    credentials = grpc.ssl_channel_credentials(pki.ca.cert_pem, pki.client.key_pem, pki.client.cert_pem)
    with grpc.secure_channel(running.address, credentials) as channel, pytest.raises(grpc.RpcError) as caught:
        catalog_pb2_grpc.CatalogServiceStub(channel).ListResources(pb.ListResourcesRequest(), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "(missing_token)" in caught.value.details()


def test_unreadable_tls_file_is_a_config_error_naming_it(tmp_path: Path):
    config = make_config(tmp_path / "node")
    server = replace(config.server, tls_cert="tls/missing.pem", tls_key="tls/missing.key")
    config = replace(config, server=server)
    with pytest.raises(ConfigError, match="missing.pem"):
        server_credentials(SimpleNamespace(config=config))  # type: ignore[arg-type]


def issue_expired(ca: Issued, common_name: str, *, server: bool) -> Issued:
    """A certificate of ``ca`` that expired an hour ago."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2)).not_valid_after(now - dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def test_expired_client_certificate_is_refused_logged_and_the_node_keeps_serving(running, pki, capfd):
    expired = issue_expired(pki.ca, "platform client", server=False)
    credentials = grpc.ssl_channel_credentials(pki.ca.cert_pem, expired.key_pem, expired.cert_pem)
    error = failure(grpc.secure_channel(running.address, credentials), running)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert running.node.audit.query(AuditFilter()).entries == []
    # The refusal is the server's TLS layer's: gRPC core logs it (the Python server is never called).
    assert "certificate has expired" in capfd.readouterr().err
    assert_still_serving(running, pki)


def assert_still_serving(running: RunningNode, pki: Pki) -> None:
    good = grpc.ssl_channel_credentials(pki.ca.cert_pem, pki.client.key_pem, pki.client.cert_pem)
    with grpc.secure_channel(running.address, good) as channel:
        assert list_call(channel, running).total_size == 0
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_server_certificate_for_another_name_is_refused_by_the_client_and_logged(running, pki, capfd):
    credentials = grpc.ssl_channel_credentials(pki.ca.cert_pem, pki.client.key_pem, pki.client.cert_pem)
    channel = grpc.secure_channel(running.address, credentials,
                                  options=[("grpc.ssl_target_name_override", "exnode.other-department.example")])
    error = failure(channel, running)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert running.node.audit.query(AuditFilter()).entries == []
    assert "exnode.other-department.example" in capfd.readouterr().err
    assert_still_serving(running, pki)


def serve_with(tmp_path: Path, server_cert: Issued, ca: Issued, client_ca: bool) -> RunningNode:
    data_dir = tmp_path / "node"
    config = make_config(data_dir)
    tls = data_dir / "tls"
    tls.mkdir()
    (tls / "ca.pem").write_bytes(ca.cert_pem)
    (tls / "server.pem").write_bytes(server_cert.cert_pem)
    (tls / "server.key").write_bytes(server_cert.key_pem)
    server = replace(config.server, tls_cert="tls/server.pem", tls_key="tls/server.key",
                     tls_client_ca="tls/ca.pem" if client_ca else "")
    return RunningNode(replace(config, server=server))


def test_an_expired_server_certificate_is_refused_by_the_client(tmp_path: Path, pki, capfd):
    running = serve_with(tmp_path, issue_expired(pki.ca, "exnode node", server=True), pki.ca, client_ca=False)
    try:
        error = failure(grpc.secure_channel(running.address, grpc.ssl_channel_credentials(pki.ca.cert_pem)), running)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "certificate has expired" in capfd.readouterr().err
        assert running.node.audit.query(AuditFilter()).entries == []
    finally:
        running.close()


def test_tls_without_client_certificates_serves_any_client_that_trusts_the_node(tmp_path: Path, pki):
    """Mutual TLS is optional: without server.tls_client_ca the port speaks TLS and the bearer token
    alone says who calls."""
    running = serve_with(tmp_path, pki.server, pki.ca, client_ca=False)
    try:
        with grpc.secure_channel(running.address, grpc.ssl_channel_credentials(pki.ca.cert_pem)) as channel:
            assert list_call(channel, running).total_size == 0
        assert failure(grpc.insecure_channel(running.address), running).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.close()
