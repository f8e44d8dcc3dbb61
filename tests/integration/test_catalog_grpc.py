"""CatalogService over real gRPC: statuses and messages that name the field, and nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from exnode.v1 import catalog_pb2 as pb
from exnode.v1 import catalog_pb2_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from node.grpc import convert
from tests.conftest import resource
from tests.integration.grpc_node import RunningNode, make_config


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    running = RunningNode(make_config(tmp_path / "node", max_message_bytes=256 * 1024))
    yield running
    running.close()


@pytest.fixture
def stub(node: RunningNode) -> catalog_pb2_grpc.CatalogServiceStub:
    return catalog_pb2_grpc.CatalogServiceStub(node.channel)


def create(stub, **changes) -> pb.Resource:
    return stub.CreateResource(pb.CreateResourceRequest(metadata=convert.metadata_to_proto(resource(**changes))))


def rpc_error(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)
    return caught.value


def count(stub) -> int:
    return stub.ListResources(pb.ListResourcesRequest()).total_size


def test_create_get_update_publish_retire_history(stub):
    created = create(stub)
    assert (created.status, created.latest_version) == (pb.DRAFT, 1)
    published = stub.PublishResource(pb.PublishResourceRequest(code=created.code))
    assert published.status == pb.PUBLISHED and published.version.metadata.publish_date
    meta = convert.metadata_to_proto(resource(name="城乡低保对象信息（修订）"))
    updated = stub.UpdateResource(pb.UpdateResourceRequest(metadata=meta, expected_version=1))
    assert (updated.latest_version, updated.published_version) == (2, 1)
    old = stub.GetResource(pb.GetResourceRequest(code=created.code, version=1))
    assert old.version.metadata.name == "城乡最低生活保障对象信息"
    assert old.version.state == pb.VERSION_PUBLISHED
    stub.PublishResource(pb.PublishResourceRequest(code=created.code, expected_version=2))
    retired = stub.RetireResource(pb.RetireResourceRequest(code=created.code))
    assert retired.status == pb.RETIRED and retired.HasField("retired_at")
    history = stub.ListResourceHistory(pb.ListResourceHistoryRequest(code=created.code))
    assert [v.version for v in history.versions] == [1, 2]


def test_duplicate_code_is_already_exists(stub):
    create(stub)
    error = rpc_error(create, stub)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "311140001/000101" in error.details()
    assert count(stub) == 1


def test_bad_check_character_is_invalid_argument_naming_the_field(stub):
    meta = convert.metadata_to_proto(resource(provider_code="11100000MB01284765"))
    error = rpc_error(stub.CreateResource, pb.CreateResourceRequest(metadata=meta))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "provider_code" in error.details() and "check character" in error.details()
    status = rpc_status.from_call(error)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["provider_code"]
    assert count(stub) == 0


def test_unknown_enumeration_value_is_invalid_argument(stub):
    meta = convert.metadata_to_proto(resource())
    meta.share_type = 42
    error = rpc_error(stub.CreateResource, pb.CreateResourceRequest(metadata=meta))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "share_type" in error.details() and "42" in error.details()


def test_missing_fields_and_bad_items_are_each_named(stub):
    meta = convert.metadata_to_proto(resource())
    meta.name = ""
    meta.items[1].name = meta.items[0].name
    meta.items[2].data_type = "X"
    meta.items[3].length = 5  # a date takes no length
    error = rpc_error(stub.CreateResource, pb.CreateResourceRequest(metadata=meta))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for field in ("items[2].data_type",):
        assert field in error.details()
    meta.items[2].data_type = "Y"
    error = rpc_error(stub.CreateResource, pb.CreateResourceRequest(metadata=meta))
    for field in ("name", "items[1].name", "items[3].length"):
        assert field in error.details(), field


def test_publishing_a_retired_resource_is_failed_precondition(stub):
    create(stub)
    stub.PublishResource(pb.PublishResourceRequest(code="311140001/000101"))
    stub.RetireResource(pb.RetireResourceRequest(code="311140001/000101"))
    error = rpc_error(stub.PublishResource, pb.PublishResourceRequest(code="311140001/000101"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "RETIRED" in error.details()


def test_published_version_cannot_be_edited_in_place(stub):
    create(stub)
    stub.PublishResource(pb.PublishResourceRequest(code="311140001/000101"))
    meta = convert.metadata_to_proto(resource(name="改名"))
    stub.UpdateResource(pb.UpdateResourceRequest(metadata=meta))
    v1 = stub.GetResource(pb.GetResourceRequest(code="311140001/000101", version=1))
    assert v1.version.metadata.name == "城乡最低生活保障对象信息"


def test_stale_expected_version_is_aborted(stub):
    create(stub)
    error = rpc_error(stub.PublishResource, pb.PublishResourceRequest(code="311140001/000101", expected_version=3))
    assert error.code() == grpc.StatusCode.ABORTED and "version 1" in error.details()


def test_unknown_related_code_is_invalid_argument(stub):
    meta = convert.metadata_to_proto(resource(related_codes=("311140001/777777",)))
    error = rpc_error(stub.CreateResource, pb.CreateResourceRequest(metadata=meta))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "related_codes[0]" in error.details()


def test_not_found_names_the_code(stub):
    error = rpc_error(stub.GetResource, pb.GetResourceRequest(code="311140001/000404"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "311140001/000404" in error.details()
    error = rpc_error(stub.GetResource, pb.GetResourceRequest(code=""))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "code" in error.details()


def test_oversized_request_is_resource_exhausted_and_changes_nothing(stub):
    meta = convert.metadata_to_proto(resource())
    meta.summary = "低" * 200_000  # ~600 KB, over the node's 256 KiB limit in this test
    error = rpc_error(stub.CreateResource, pb.CreateResourceRequest(metadata=meta))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert count(stub) == 0


def test_overlong_field_within_the_message_limit_is_invalid_argument(stub):
    meta = convert.metadata_to_proto(resource())
    meta.summary = "低" * 5000
    error = rpc_error(stub.CreateResource, pb.CreateResourceRequest(metadata=meta))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "summary" in error.details()


def test_import_refuses_the_whole_batch_and_lists_every_bad_entry(stub):
    good = convert.metadata_to_proto(resource("311140001/000001"))
    bad_check = convert.metadata_to_proto(resource("311140001/000002", provider_code="11100000MB01284765"))
    bad_enum = convert.metadata_to_proto(resource("311140001/000003"))
    bad_enum.update_cycle = 99
    error = rpc_error(stub.ImportResources, pb.ImportResourcesRequest(resources=[good, bad_check, bad_enum]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = error_details_pb2.BadRequest()
    rpc_status.from_call(error).details[0].Unpack(bad)
    assert {v.field for v in bad.field_violations} == {"resources[1].provider_code", "resources[2].update_cycle"}
    assert count(stub) == 0


def test_list_search_and_pagination_over_grpc(stub):
    for index in range(1, 6):
        create(stub, code=f"311140001/00000{index}", name=f"第{index}号养老机构名录")
    page = stub.ListResources(pb.ListResourcesRequest(query="养老机构", page_size=2))
    assert page.total_size == 5 and len(page.resources) == 2 and page.next_page_token
    rest = stub.ListResources(pb.ListResourcesRequest(query="养老机构", page_size=10,
                                                      page_token=page.next_page_token))
    assert len(rest.resources) == 3 and not rest.next_page_token
    error = rpc_error(stub.ListResources, pb.ListResourcesRequest(query="婚姻", page_token=page.next_page_token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in error.details()


def test_export_streams_published_resources(stub):
    create(stub, code="311140001/000001")
    create(stub, code="311140001/000002")
    stub.PublishResource(pb.PublishResourceRequest(code="311140001/000002"))
    exported = list(stub.ExportResources(pb.ExportResourcesRequest()))
    assert [r.code for r in exported] == ["311140001/000002"]


def test_health_and_reflection_are_served(node):
    health = health_pb2_grpc.HealthStub(node.channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
    answer = health.Check(health_pb2.HealthCheckRequest(service="exnode.v1.CatalogService"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(node.channel)
    responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert "exnode.v1.CatalogService" in names and "grpc.health.v1.Health" in names


def test_relevance_order_over_grpc_and_an_unknown_order_is_refused_naming_it(stub):
    create(stub, code="311140001/000001", name="名录", summary="养老机构的摘要")
    create(stub, code="311140001/000002", name="养老机构名录")
    by_code = stub.ListResources(pb.ListResourcesRequest(query="养老机构"))
    assert [r.code for r in by_code.resources] == ["311140001/000001", "311140001/000002"]
    first = stub.ListResources(pb.ListResourcesRequest(query="养老机构", page_size=1,
                                                       order=pb.SEARCH_ORDER_RELEVANCE))
    rest = stub.ListResources(pb.ListResourcesRequest(query="养老机构", page_size=1, order=pb.SEARCH_ORDER_RELEVANCE,
                                                      page_token=first.next_page_token))
    assert [r.code for r in [*first.resources, *rest.resources]] == ["311140001/000002", "311140001/000001"]
    assert first.total_size == 2 and not rest.next_page_token
    error = rpc_error(stub.ListResources, pb.ListResourcesRequest(query="养老机构", order=7))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "order" in error.details()
