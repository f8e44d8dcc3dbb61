"""The catalog feed over real gRPC, on SQLite and PostgreSQL: resume gives every event exactly once and in
order; drafts stay with their department; tokens that are forged, another department's, another node's,
or carried by an expired JWT are refused with a clear status."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from exnode.v1 import catalog_pb2 as pb
from exnode.v1 import catalog_pb2_grpc

from catalog.model import Classification
from node.cli import main as cli_main
from node.grpc import convert
from security.identity import Principal
from tests.conftest import OTHER_PROVIDER, PROVIDER, resource
from tests.integration.grpc_node import BearerInterceptor, RunningNode, make_config

STREAM_TIMEOUT_S = 20  # a safety net for a broken feed, never reached by a passing test


def start_node(data: Path, database_url: str = "") -> RunningNode:
    config = make_config(data, database_url)
    config = replace(config, node=replace(config.node, id=f"t{uuid.uuid4().hex[:10]}"),
                     auth=replace(config.auth, leeway_s=0.0))
    return RunningNode(config)


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[RunningNode]:
    running = start_node(tmp_path / "node", database_url)
    yield running
    running.close()


def stub_for(node: RunningNode, dept: str = PROVIDER, roles: tuple[str, ...] = ("catalog_admin",),
             **token: object) -> catalog_pb2_grpc.CatalogServiceStub:
    channel = grpc.intercept_channel(node.raw_channel, BearerInterceptor(node.token(dept, roles, **token)))
    return catalog_pb2_grpc.CatalogServiceStub(channel)


def watch(stub: catalog_pb2_grpc.CatalogServiceStub, **request: object) -> grpc.Call:
    return stub.WatchCatalog(pb.WatchCatalogRequest(**request), timeout=STREAM_TIMEOUT_S)


def take(call: grpc.Call, count: int) -> list[pb.CatalogEvent]:
    """The next ``count`` catalog events (the CAUGHT_UP marker is skipped)."""
    out: list[pb.CatalogEvent] = []
    while len(out) < count:
        event = next(call)
        if event.kind != pb.CAUGHT_UP:
            out.append(event)
    return out


def live(call: grpc.Call) -> grpc.Call:
    """Wait until the watch has replayed and is following live (so a change made now is not missed)."""
    while next(call).kind != pb.CAUGHT_UP:
        pass
    return call


def create(stub: catalog_pb2_grpc.CatalogServiceStub, code: str, **changes: object) -> None:
    stub.CreateResource(pb.CreateResourceRequest(metadata=convert.metadata_to_proto(resource(code, **changes))))


def publish(stub: catalog_pb2_grpc.CatalogServiceStub, code: str) -> None:
    stub.PublishResource(pb.PublishResourceRequest(code=code))


def code(n: int) -> str:
    return f"311140001/{n:06d}"


def refusal(call: grpc.Call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        next(call)
    return caught.value


def test_resuming_after_a_disconnect_gives_every_event_exactly_once_in_order(node: RunningNode):
    admin = stub_for(node)
    for n in range(1, 4):
        create(admin, code(n))
    first = watch(admin, from_beginning=True)
    before = take(first, 2)
    first.cancel()  # the watcher goes away after two events …
    publish(admin, code(1))  # … the catalog keeps changing meanwhile …
    create(admin, code(4))
    publish(admin, code(4))
    resumed = watch(admin, resume_token=before[-1].resume_token)  # … and it comes back with its last token
    after = take(resumed, 4)
    assert next(resumed).kind == pb.CAUGHT_UP  # the replay is over, nothing more before the next change
    create(admin, code(5))
    latest = next(resumed)
    resumed.cancel()

    seen = [(e.kind, e.code) for e in before + after + [latest]]
    assert seen == [(pb.CREATED, code(1)), (pb.CREATED, code(2)), (pb.CREATED, code(3)),
                    (pb.PUBLISHED_EVENT, code(1)), (pb.CREATED, code(4)), (pb.PUBLISHED_EVENT, code(4)),
                    (pb.CREATED, code(5))]
    positions = [e.sequence for e in before + after + [latest]]
    assert positions == sorted(set(positions))
    everything = take(watch(admin, from_beginning=True), 7)
    assert [e.sequence for e in everything] == positions
    assert after[0].name == "城乡最低生活保障对象信息" and after[0].provider_code == PROVIDER
    assert after[0].classification == pb.DEPARTMENTAL and after[0].version == 1


def test_without_a_token_the_feed_starts_now_and_the_marker_resumes_from_there(node: RunningNode):
    admin = stub_for(node)
    create(admin, code(1))
    call = watch(admin)
    marker = next(call)
    assert marker.kind == pb.CAUGHT_UP and marker.resume_token and not marker.code
    call.cancel()  # gone before anything happened: the marker's token still resumes without a gap
    create(admin, code(2))
    resumed = watch(admin, resume_token=marker.resume_token)
    assert [e.code for e in take(resumed, 1)] == [code(2)]
    resumed.cancel()


def test_drafts_stay_with_their_department(node: RunningNode):
    admin = stub_for(node)
    partner = watch(stub_for(node, OTHER_PROVIDER, ("consumer",)), from_beginning=True)
    own = watch(stub_for(node, PROVIDER, ("consumer",)), from_beginning=True)
    create(admin, code(1))
    admin.UpdateResource(pb.UpdateResourceRequest(metadata=convert.metadata_to_proto(
        resource(code(1), name="城乡低保对象信息（草稿修订）"))))
    publish(admin, code(1))
    admin.UpdateResource(pb.UpdateResourceRequest(metadata=convert.metadata_to_proto(
        resource(code(1), name="城乡低保对象信息（新草稿）"))))  # a new draft version of a published resource
    create(admin, code(2))  # a draft that is never published
    admin.RetireResource(pb.RetireResourceRequest(code=code(1)))
    create(admin, code(3))
    publish(admin, code(3))

    others = take(partner, 3)
    partner.cancel()
    assert [(e.kind, e.code) for e in others] == [
        (pb.PUBLISHED_EVENT, code(1)), (pb.RETIRED_EVENT, code(1)), (pb.PUBLISHED_EVENT, code(3))]
    # The retirement is public, the pending draft (version 2, 新草稿) is not: the event names version 1.
    assert [(e.version, e.name) for e in others[:2]] == [(1, "城乡低保对象信息（草稿修订）")] * 2
    mine = take(own, 8)
    own.cancel()
    assert [e.kind for e in mine] == [pb.CREATED, pb.UPDATED, pb.PUBLISHED_EVENT, pb.UPDATED, pb.CREATED,
                                      pb.RETIRED_EVENT, pb.CREATED, pb.PUBLISHED_EVENT]


def test_filters_by_provider_classification_and_code_prefix(node: RunningNode):
    admin = stub_for(node)
    other_admin = stub_for(node, OTHER_PROVIDER)
    by_provider = watch(admin, from_beginning=True, provider_code=OTHER_PROVIDER)
    by_class = watch(admin, from_beginning=True, classification=pb.BASIC)
    by_prefix = watch(admin, from_beginning=True, code_prefix="311140001/0002")
    create(admin, code(1))
    create(admin, "111140001/000001", classification=Classification.BASIC)
    create(admin, code(201))
    create(other_admin, "311150100/000001", provider_code=OTHER_PROVIDER, provider_name="呼和浩特市民政局")
    publish(other_admin, "311150100/000001")  # its draft was the other department's business
    [event] = take(by_provider, 1)
    assert (event.kind, event.code) == (pb.PUBLISHED_EVENT, "311150100/000001")
    assert take(by_class, 1)[0].code == "111140001/000001"
    assert take(by_prefix, 1)[0].code == code(201)
    for call in (by_provider, by_class, by_prefix):
        call.cancel()


def test_a_security_officer_does_not_watch_the_catalog(node: RunningNode):
    error = refusal(watch(stub_for(node, PROVIDER, ("security_officer",))))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "security_officer" in error.details()


def first_token(node: RunningNode, dept: str = PROVIDER) -> str:
    admin = stub_for(node)
    create(admin, code(900))
    publish(admin, code(900))
    call = watch(stub_for(node, dept, ("consumer",)), from_beginning=True)
    token = take(call, 1)[0].resume_token
    call.cancel()
    return token


def test_a_forged_token_is_invalid_argument(node: RunningNode):
    token = first_token(node)
    payload, mac = token.removeprefix("cw1.").split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields["p"] = 0  # replay from the start under somebody else's name
    forged = "cw1." + base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=") + "." + mac
    consumer = stub_for(node, PROVIDER, ("consumer",))
    for bad, words in ((forged, "forged"), ("not-a-token", "not a resume token")):
        error = refusal(watch(consumer, resume_token=bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "resume_token" in error.details() and words in error.details()


def test_another_departments_token_is_permission_denied(node: RunningNode):
    token = first_token(node, PROVIDER)
    error = refusal(watch(stub_for(node, OTHER_PROVIDER, ("consumer",)), resume_token=token))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert PROVIDER in error.details() and OTHER_PROVIDER in error.details()


def test_a_token_ahead_of_the_feed_is_refused(node: RunningNode):
    feed = node.node.feed
    token = feed.token(Principal("tester", PROVIDER, frozenset({"consumer"})), 10**6)
    error = refusal(watch(stub_for(node, PROVIDER, ("consumer",)), resume_token=token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "ahead" in error.details()


def test_a_token_and_from_beginning_together_are_refused(node: RunningNode):
    token = first_token(node)
    error = refusal(watch(stub_for(node), resume_token=token, from_beginning=True))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "from_beginning" in error.details()


def test_resuming_with_an_expired_jwt_is_unauthenticated(node: RunningNode):
    token = first_token(node)
    expired = stub_for(node, PROVIDER, ("consumer",), lifetime=dt.timedelta(seconds=-60))
    error = refusal(watch(expired, resume_token=token))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in error.details()


def test_the_stream_ends_unauthenticated_when_the_jwt_expires(node: RunningNode):
    admin = stub_for(node)
    short = stub_for(node, OTHER_PROVIDER, ("consumer",), lifetime=dt.timedelta(seconds=3))
    call = live(watch(short))
    create(admin, code(1))
    publish(admin, code(1))
    assert next(call).code == code(1)  # served while the token is valid …
    error = refusal(call)  # … then, with nothing else happening, ended when it expires
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in error.details()
    assert "resume_token" in error.details()


def test_a_token_from_another_node_is_refused(tmp_path: Path):
    first, second = start_node(tmp_path / "a"), start_node(tmp_path / "b")
    try:
        token = first_token(first)
        first_token(second)  # the second node has events too: the refusal is about the node, not the position
        error = refusal(watch(stub_for(second, PROVIDER, ("consumer",)), resume_token=token))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert first.config.node.id in error.details() and second.config.node.id in error.details()
    finally:
        first.close()
        second.close()


def test_cli_watch_prints_json_lines_and_resumes_with_since(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    running = start_node(tmp_path / "node")
    try:
        admin = stub_for(running)
        for n in (1, 2, 3):
            create(admin, code(n))
        base = ["--server", running.address, "--token", running.token(PROVIDER, ("consumer",)), "--json"]
        assert cli_main(["catalog", "watch", *base, "--from-beginning", "--limit", "2"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(d["kind"], d["code"]) for d in lines] == [("CREATED", code(1)), ("CREATED", code(2))]
        assert cli_main(["catalog", "watch", *base, "--since", lines[-1]["resume_token"], "--limit", "1"]) == 0
        assert [json.loads(line)["code"] for line in capsys.readouterr().out.splitlines()] == [code(3)]
        assert cli_main(["catalog", "watch", *base, "--since", "forged", "--limit", "1"]) == 1
        assert "INVALID_ARGUMENT" in capsys.readouterr().err
        assert cli_main(["catalog", "watch", *base, "--since", "x", "--from-beginning"]) == 2
    finally:
        running.close()


def test_live_watchers_share_the_tail_and_one_left_behind_it_reads_the_table(node: RunningNode,
                                                                           monkeypatch: pytest.MonkeyPatch):
    """Live watchers take new events from the loop's one read of the log; a commit larger than what the tail
    keeps puts them behind it, and they read the table instead — either way every event, once, in order,
    and another department's drafts wake no one (the partner's next event is the publication)."""
    from node.services.catalog_feed import LoopTail

    monkeypatch.setattr(LoopTail, "KEEP", 2)
    admin = stub_for(node)
    mine = [live(watch(stub_for(node, PROVIDER, ("consumer",)))) for _ in range(3)]
    partner = live(watch(stub_for(node, OTHER_PROVIDER, ("consumer",))))
    create(admin, code(1))  # one event: from the tail's memory
    admin.ImportResources(pb.ImportResourcesRequest(  # five in one commit: more than the tail keeps
        resources=[convert.metadata_to_proto(resource(code(n))) for n in range(2, 7)]))
    publish(admin, code(3))

    for call in mine:
        events = take(call, 7)
        call.cancel()
        assert [(e.kind, e.code) for e in events] == (
            [(pb.CREATED, code(n)) for n in range(1, 7)] + [(pb.PUBLISHED_EVENT, code(3))])
        assert [e.sequence for e in events] == sorted({e.sequence for e in events})
    published = take(partner, 1)
    partner.cancel()
    assert [(e.kind, e.code) for e in published] == [(pb.PUBLISHED_EVENT, code(3))]
