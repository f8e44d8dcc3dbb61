"""Authentication, the policy and the audit trail over real gRPC.

Every refused call: the right status, a message naming the problem, one audit entry recording the refusal,
and nothing changed. Forged tokens are signed with the node's development issuer key (or a stranger's key),
so the only thing wrong with each is the one thing the case is about.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from exnode.v1 import audit_pb2, audit_pb2_grpc, catalog_pb2_grpc, keys_pb2, keys_pb2_grpc
from exnode.v1 import catalog_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.grpc import convert
from node.storage.audit_repository import AuditFilter
from security.audit import AuditEntry
from security.identity import DEV_ISSUER_KEY, dev_issuer_name
from tests.conftest import OTHER_PROVIDER, PROVIDER, resource
from tests.integration.grpc_node import RunningNode, make_config

PUBLISHED_CODE = "311140001/000101"
DRAFT_CODE = "311140001/000102"
NEW_CODE = "311140001/000103"
TIMEOUT = 5


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningNode]:
    node = RunningNode(make_config(tmp_path / "node"))
    yield node
    node.close()


@pytest.fixture
def admin(running: RunningNode) -> catalog_pb2_grpc.CatalogServiceStub:
    """catalog_admin of PROVIDER."""
    return catalog_pb2_grpc.CatalogServiceStub(running.channel)


def stub_as(running: RunningNode, dept: str, *roles: str, subject: str = "tester"
            ) -> catalog_pb2_grpc.CatalogServiceStub:
    return catalog_pb2_grpc.CatalogServiceStub(running.channel_as(dept, roles, subject))


def create_request(code: str = NEW_CODE, **changes: object) -> pb.CreateResourceRequest:
    return pb.CreateResourceRequest(metadata=convert.metadata_to_proto(resource(code, **changes)))


def rpc_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=TIMEOUT, **kwargs)
    return caught.value


def audit(running: RunningNode, **flt: Any) -> list[AuditEntry]:
    """Audit entries matching the filter, newest first."""
    return running.node.audit.query(AuditFilter(**flt), page_size=500).entries


def catalog_codes(admin: catalog_pb2_grpc.CatalogServiceStub) -> list[str]:
    return [r.code for r in admin.ListResources(pb.ListResourcesRequest(), timeout=TIMEOUT).resources]


@pytest.fixture
def catalog(running: RunningNode, admin: catalog_pb2_grpc.CatalogServiceStub) -> dict[str, pb.Resource]:
    """PUBLISHED_CODE: published v1 with a pending draft v2; DRAFT_CODE: a draft only. Both PROVIDER's."""
    admin.CreateResource(create_request(PUBLISHED_CODE), timeout=TIMEOUT)
    admin.PublishResource(pb.PublishResourceRequest(code=PUBLISHED_CODE), timeout=TIMEOUT)
    meta = convert.metadata_to_proto(resource(PUBLISHED_CODE, name="城乡低保对象信息（修订草稿）"))
    admin.UpdateResource(pb.UpdateResourceRequest(metadata=meta), timeout=TIMEOUT)
    admin.CreateResource(create_request(DRAFT_CODE, name="特困人员供养信息"), timeout=TIMEOUT)
    return {code: admin.GetResource(pb.GetResourceRequest(code=code), timeout=TIMEOUT)
            for code in (PUBLISHED_CODE, DRAFT_CODE)}


# -- forging tokens ---------------------------------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(document: object) -> str:
    return b64(json.dumps(document).encode("utf-8"))


class Forge:
    """Tokens for the running node, each wrong in exactly one way."""

    def __init__(self, running: RunningNode) -> None:
        config = running.config
        self.issuer = dev_issuer_name(config.node.id)
        self.audience = config.audience
        self.key = serialization.load_pem_private_key((config.keys_dir / DEV_ISSUER_KEY).read_bytes(), None)

    def claims(self, **changes: object) -> dict[str, Any]:
        now = int(time.time())
        document: dict[str, Any] = {
            "iss": self.issuer, "aud": self.audience, "sub": "mallory", "dept": PROVIDER,
            "roles": ["catalog_admin"], "iat": now, "nbf": now, "exp": now + 3600, "jti": uuid.uuid4().hex,
        }
        document.update(changes)
        return {name: value for name, value in document.items() if value is not None}

    def sign(self, key: Any = None, kid: str = "dev", **changes: object) -> str:
        return jwt.encode(self.claims(**changes), key or self.key, algorithm="EdDSA", headers={"kid": kid})

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


def _alg_none(forge: Forge) -> str:
    return f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(forge.claims())}."


def _hs256_with_public_key(forge: Forge) -> str:
    header = b64json({"alg": "HS256", "typ": "JWT", "kid": "dev"})
    payload = b64json(forge.claims())
    mac = hmac.new(forge.public_pem(), f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def _numeric_kid(forge: Forge) -> str:
    return f"{b64json({'alg': 'EdDSA', 'kid': 7})}.{b64json(forge.claims())}.{b64(bytes(64))}"


BAD_TOKENS: list[tuple[str, Callable[[Forge], str | None], str]] = [
    ("missing token", lambda forge: None, "missing_token"),
    ("empty bearer", lambda forge: "", "missing_token"),
    ("malformed token", lambda forge: "this.is-not.a-jwt", "malformed_token"),
    ("numeric kid", _numeric_kid, "malformed_token"),
    ("alg none", _alg_none, "algorithm_not_allowed"),
    ("HS256 keyed with the public key", _hs256_with_public_key, "algorithm_not_allowed"),
    ("unknown key", lambda forge: forge.sign(ed25519.Ed25519PrivateKey.generate(), kid="rogue"),
     "unknown_key"),
    ("stranger key under the dev kid", lambda forge: forge.sign(ed25519.Ed25519PrivateKey.generate()),
     "bad_signature"),
    ("expired", lambda forge: forge.sign(exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200),
     "expired"),
    ("not yet valid", lambda forge: forge.sign(nbf=int(time.time()) + 3600), "not_yet_valid"),
    ("wrong issuer", lambda forge: forge.sign(iss="https://iam.evil.example"), "wrong_issuer"),
    ("wrong audience", lambda forge: forge.sign(aud="exnode:another-node"), "wrong_audience"),
    ("missing department", lambda forge: forge.sign(dept=None), "missing_claim"),
    ("bad department", lambda forge: forge.sign(dept=PROVIDER[:-1] + "5"), "bad_claim"),
    ("missing roles", lambda forge: forge.sign(roles=None), "missing_claim"),
    ("unknown role", lambda forge: forge.sign(roles=["system"]), "bad_claim"),
]


@pytest.mark.parametrize(("case", "make", "reason"), BAD_TOKENS, ids=[case for case, _, _ in BAD_TOKENS])
def test_bad_token_is_unauthenticated_audited_and_changes_nothing(running, admin, case, make, reason):
    before = catalog_codes(admin)
    bearer = make(Forge(running))
    request_id = f"bad-token-{uuid.uuid4().hex[:12]}"
    metadata = [("x-request-id", request_id)]
    if bearer is not None:
        metadata.append(("authorization", f"Bearer {bearer}"))
    stub = catalog_pb2_grpc.CatalogServiceStub(running.raw_channel)

    error = rpc_error(stub.CreateResource, create_request(), metadata=metadata)

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
    assert f"({reason})" in error.details()
    assert len(error.details()) > len(reason) + 3, "the message names the problem, not just the tag"
    entries = audit(running, result="UNAUTHENTICATED")
    assert len(entries) == 1, [e.record for e in entries]
    record = entries[0].record
    assert record.request_id == request_id
    assert record.action == "CatalogService/CreateResource"
    assert record.detail.startswith(f"{reason}: ")
    assert (record.subject, record.department_code, record.roles) == ("", "", ())
    assert record.peer
    assert catalog_codes(admin) == before
    missing = rpc_error(admin.GetResource, pb.GetResourceRequest(code=NEW_CODE))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_non_bearer_authorization_scheme_is_unauthenticated(running):
    stub = catalog_pb2_grpc.CatalogServiceStub(running.raw_channel)
    token = running.token()
    error = rpc_error(stub.ListResources, pb.ListResourcesRequest(),
                      metadata=[("authorization", f"Basic {token}")])
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in error.details() and "(malformed_token)" in error.details()
    refused = audit(running, result="UNAUTHENTICATED")
    assert [e.record.action for e in refused] == ["CatalogService/ListResources"]


def test_bad_token_on_a_streaming_call_is_unauthenticated_and_audited(running, catalog):
    stub = catalog_pb2_grpc.CatalogServiceStub(running.raw_channel)
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ExportResources(pb.ExportResourcesRequest(), timeout=TIMEOUT,
                                  metadata=[("authorization", f"Bearer {_alg_none(Forge(running))}")]))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "(algorithm_not_allowed)" in caught.value.details()
    refused = audit(running, result="UNAUTHENTICATED")
    assert [e.record.action for e in refused] == ["CatalogService/ExportResources"]


# -- permission denied ------------------------------------------------------------------------------------

def assert_denied(running: RunningNode, error: grpc.RpcError, target: str, *words: str) -> AuditEntry:
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    for word in words:
        assert word in error.details(), f"{word!r} not in {error.details()!r}"
    entries = audit(running, result="PERMISSION_DENIED")
    assert len(entries) == 1, [e.record for e in entries]
    record = entries[0].record
    assert record.target == target
    assert record.detail == error.details()
    return entries[0]


def test_consumer_cannot_create_a_resource(running, admin):
    consumer = stub_as(running, PROVIDER, "consumer", "provider", subject="li.si")
    error = rpc_error(consumer.CreateResource, create_request())
    entry = assert_denied(running, error, f"resource:{NEW_CODE}", "catalog.create", "catalog_admin",
                          "consumer, provider")
    assert (entry.record.subject, entry.record.department_code) == ("li.si", PROVIDER)
    assert entry.record.roles == ("consumer", "provider")
    assert entry.record.action == "CatalogService/CreateResource"
    assert catalog_codes(admin) == []


def test_catalog_admin_of_another_department_cannot_create_for_the_provider(running, admin):
    other = stub_as(running, OTHER_PROVIDER, "catalog_admin")
    error = rpc_error(other.CreateResource, create_request())
    assert_denied(running, error, f"resource:{NEW_CODE}", PROVIDER, OTHER_PROVIDER)
    assert catalog_codes(admin) == []


@pytest.mark.parametrize("method", ["PublishResource", "RetireResource", "UpdateResource"])
def test_catalog_admin_of_another_department_cannot_change_the_providers_resource(running, admin, catalog,
                                                                                   method):
    other = stub_as(running, OTHER_PROVIDER, "catalog_admin", subject="wang.wu")
    request = {
        "PublishResource": pb.PublishResourceRequest(code=PUBLISHED_CODE),
        "RetireResource": pb.RetireResourceRequest(code=PUBLISHED_CODE),
        "UpdateResource": pb.UpdateResourceRequest(metadata=convert.metadata_to_proto(
            resource(PUBLISHED_CODE, name="被他人篡改的名称", provider_code=OTHER_PROVIDER))),
    }[method]
    error = rpc_error(getattr(other, method), request)
    entry = assert_denied(running, error, f"resource:{PUBLISHED_CODE}", PROVIDER, OTHER_PROVIDER,
                          PUBLISHED_CODE, "cannot change")
    assert (entry.record.subject, entry.record.department_code) == ("wang.wu", OTHER_PROVIDER)
    assert entry.record.action == f"CatalogService/{method}"
    after = admin.GetResource(pb.GetResourceRequest(code=PUBLISHED_CODE), timeout=TIMEOUT)
    assert after == catalog[PUBLISHED_CODE]
    assert (after.status, after.latest_version, after.published_version) == (pb.PUBLISHED, 2, 1)


def test_security_officer_cannot_create_a_resource(running, admin):
    officer = stub_as(running, PROVIDER, "security_officer")
    error = rpc_error(officer.CreateResource, create_request())
    assert_denied(running, error, f"resource:{NEW_CODE}", "security_officer", "nothing else")
    assert catalog_codes(admin) == []


def test_security_officer_cannot_list_the_catalog(running, catalog):
    officer = stub_as(running, PROVIDER, "security_officer")
    error = rpc_error(officer.ListResources, pb.ListResourcesRequest())
    assert_denied(running, error, "catalog", "catalog.read", "nothing else")


@pytest.mark.parametrize("method", ["GetResource", "ListResourceHistory"])
def test_another_department_cannot_read_a_draft(running, admin, catalog, method):
    other = stub_as(running, OTHER_PROVIDER, "consumer", "catalog_admin")
    request = (pb.GetResourceRequest(code=DRAFT_CODE) if method == "GetResource"
               else pb.ListResourceHistoryRequest(code=DRAFT_CODE))
    error = rpc_error(getattr(other, method), request)
    assert_denied(running, error, f"resource:{DRAFT_CODE}", DRAFT_CODE, PROVIDER, "draft")
    assert admin.GetResource(pb.GetResourceRequest(code=DRAFT_CODE), timeout=TIMEOUT) == catalog[DRAFT_CODE]


def test_another_department_cannot_read_a_pending_draft_version(running, catalog):
    other = stub_as(running, OTHER_PROVIDER, "consumer")
    error = rpc_error(other.GetResource, pb.GetResourceRequest(code=PUBLISHED_CODE, version=2))
    assert_denied(running, error, f"resource:{PUBLISHED_CODE}", "draft")


# -- what other departments see ---------------------------------------------------------------------------

def test_other_department_sees_the_published_version_not_the_owners_draft(running, admin, catalog):
    other = stub_as(running, OTHER_PROVIDER, "consumer")
    listed = other.ListResources(pb.ListResourcesRequest(), timeout=TIMEOUT)
    assert [r.code for r in listed.resources] == [PUBLISHED_CODE]
    assert listed.total_size == 1
    seen = listed.resources[0]
    assert seen.version.version == 1 and seen.version.state == pb.VERSION_PUBLISHED
    assert seen.version.metadata.name == "城乡最低生活保障对象信息"

    got = other.GetResource(pb.GetResourceRequest(code=PUBLISHED_CODE), timeout=TIMEOUT)
    assert got.version.version == 1 and got.version.metadata.name == "城乡最低生活保障对象信息"
    history = other.ListResourceHistory(pb.ListResourceHistoryRequest(code=PUBLISHED_CODE), timeout=TIMEOUT)
    assert [v.version for v in history.versions] == [1]
    exported = list(other.ExportResources(pb.ExportResourcesRequest(), timeout=TIMEOUT))
    assert [(r.code, r.version.version) for r in exported] == [(PUBLISHED_CODE, 1)]

    own = admin.ListResources(pb.ListResourcesRequest(), timeout=TIMEOUT)
    assert {r.code: r.version.version for r in own.resources} == {PUBLISHED_CODE: 2, DRAFT_CODE: 1}
    assert {r.code: r.version.metadata.name for r in own.resources}[PUBLISHED_CODE] == "城乡低保对象信息（修订草稿）"


def test_search_by_another_department_does_not_find_draft_text(running, catalog):
    other = stub_as(running, OTHER_PROVIDER, "consumer")
    for query in ("修订草稿", "特困人员"):
        found = other.ListResources(pb.ListResourcesRequest(query=query), timeout=TIMEOUT)
        assert (list(found.resources), found.total_size) == ([], 0), query


# -- the audit trail of allowed calls ---------------------------------------------------------------------

def test_successful_call_is_audited_with_who_where_and_the_request_id(running, catalog):
    stub = stub_as(running, PROVIDER, "provider", "catalog_admin", subject="zhang.san")
    response, call = stub.GetResource.with_call(pb.GetResourceRequest(code=PUBLISHED_CODE), timeout=TIMEOUT,
                                                metadata=[("x-request-id", "req-12345678")])
    assert response.code == PUBLISHED_CODE
    assert ("x-request-id", "req-12345678") in tuple(call.initial_metadata())
    entries = audit(running, subject="zhang.san")
    assert len(entries) == 1
    record = entries[0].record
    assert record.request_id == "req-12345678"
    assert record.result == "OK" and record.detail == ""
    assert record.department_code == PROVIDER
    assert record.roles == ("catalog_admin", "provider")
    assert record.action == "CatalogService/GetResource"
    assert record.target == f"resource:{PUBLISHED_CODE}"
    assert "127.0.0.1" in record.peer


def test_an_unusable_request_id_is_replaced_by_the_nodes_own(running):
    stub = stub_as(running, PROVIDER, "consumer", subject="zhao.liu")
    _, call = stub.ListResources.with_call(pb.ListResourcesRequest(), timeout=TIMEOUT,
                                           metadata=[("x-request-id", "bad id; drop table")])
    given = dict(call.initial_metadata())["x-request-id"]
    assert given != "bad id; drop table" and len(given) == 32
    assert [e.record.request_id for e in audit(running, subject="zhao.liu")] == [given]


def test_health_check_needs_no_token_and_is_not_audited(running):
    health = health_pb2_grpc.HealthStub(running.raw_channel)
    for service in ("", "exnode.v1.CatalogService", "exnode.v1.AuditService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert audit(running) == []


def test_security_officer_queries_the_audit_trail(running, catalog):
    channel = running.channel_as(OTHER_PROVIDER, ["security_officer"], "auditor")
    officer = audit_pb2_grpc.AuditServiceStub(channel)
    answer = officer.QueryAudit(audit_pb2.QueryAuditRequest(action="CatalogService/CreateResource"),
                                timeout=TIMEOUT)
    assert [e.target for e in answer.entries] == [f"resource:{DRAFT_CODE}", f"resource:{PUBLISHED_CODE}"]
    assert all(e.result == "OK" and e.department_code == PROVIDER for e in answer.entries)
    own = audit(running, subject="auditor")
    assert [(e.record.action, e.record.result, e.record.target) for e in own] == [
        ("AuditService/QueryAudit", "OK", "audit")]
    verified = officer.VerifyAudit(audit_pb2.VerifyAuditRequest(), timeout=TIMEOUT)
    assert verified.ok, verified.problem
    last = running.node.audit.last_verification()  # kept in the database, as the console shows it
    assert last is not None and last.result.ok and (last.subject, last.department_code, last.via) == (
        "auditor", OTHER_PROVIDER, "rpc")


@pytest.mark.parametrize("roles", [("catalog_admin",), ("consumer", "provider", "reviewer", "operator")])
def test_audit_trail_is_closed_to_everyone_but_a_security_officer(running, roles):
    stub = audit_pb2_grpc.AuditServiceStub(running.channel_as(PROVIDER, roles))
    error = rpc_error(stub.QueryAudit, audit_pb2.QueryAuditRequest())
    assert_denied(running, error, "audit", "audit.read", "security_officer")
    error = rpc_error(stub.VerifyAudit, audit_pb2.VerifyAuditRequest())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_keys_service_lists_the_nodes_active_key(running):
    stub = keys_pb2_grpc.KeysServiceStub(running.channel_as(OTHER_PROVIDER, ["consumer"]))
    answer = stub.ListPublicKeys(keys_pb2.ListPublicKeysRequest(), timeout=TIMEOUT)
    assert answer.node_id == running.config.node.id
    active = [k for k in answer.keys if k.active]
    assert [k.kid for k in active] == [running.node.keys.active.kid]
    assert active[0].public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert active[0].algorithm
    entries = audit(running, action="KeysService/ListPublicKeys")
    assert [(e.record.result, e.record.target) for e in entries] == [("OK", "keys")]


def test_keys_service_still_needs_a_token(running):
    stub = keys_pb2_grpc.KeysServiceStub(running.raw_channel)
    error = rpc_error(stub.ListPublicKeys, keys_pb2.ListPublicKeysRequest())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "(missing_token)" in error.details()
