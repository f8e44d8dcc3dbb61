"""CatalogService: decode, call one use case (off the event loop), encode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from exnode.v1 import catalog_pb2 as pb
from exnode.v1 import catalog_pb2_grpc

from catalog.errors import InvalidField
from node.grpc import convert
from node.ops.request_context import current, principal
from node.services.catalog import CatalogApplication
from node.services.catalog_feed import CatalogFeed


def _code(code: str) -> str:
    """The request's resource code, also recorded as the audit entry's target."""
    if not code:
        raise InvalidField.one("code", "is required")
    current().target = f"resource:{code}"[:200]
    return code


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, app: CatalogApplication, feed: CatalogFeed) -> None:
        self.app = app
        self.feed = feed

    async def CreateResource(self, request: pb.CreateResourceRequest, context: grpc.aio.ServicerContext) -> pb.Resource:
        current().target = f"resource:{request.metadata.code}"[:200]
        meta = convert.metadata_from_proto(request.metadata)
        resource = await asyncio.to_thread(self.app.create, principal(), meta)
        return convert.resource_to_proto(resource)

    async def UpdateResource(self, request: pb.UpdateResourceRequest, context: grpc.aio.ServicerContext) -> pb.Resource:
        current().target = f"resource:{request.metadata.code}"[:200]
        meta = convert.metadata_from_proto(request.metadata)
        resource = await asyncio.to_thread(self.app.update, principal(), meta, request.expected_version)
        return convert.resource_to_proto(resource)

    async def PublishResource(
        self, request: pb.PublishResourceRequest, context: grpc.aio.ServicerContext
    ) -> pb.Resource:
        resource = await asyncio.to_thread(self.app.publish, principal(), _code(request.code), request.expected_version)
        return convert.resource_to_proto(resource)

    async def RetireResource(self, request: pb.RetireResourceRequest, context: grpc.aio.ServicerContext) -> pb.Resource:
        resource = await asyncio.to_thread(self.app.retire, principal(), _code(request.code))
        return convert.resource_to_proto(resource)

    async def GetResource(self, request: pb.GetResourceRequest, context: grpc.aio.ServicerContext) -> pb.Resource:
        resource, version = await asyncio.to_thread(self.app.get, principal(), _code(request.code), request.version)
        return convert.resource_to_proto(resource, version)

    async def ListResourceHistory(
        self, request: pb.ListResourceHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResourceHistoryResponse:
        versions = await asyncio.to_thread(self.app.history, principal(), _code(request.code))
        return pb.ListResourceHistoryResponse(
            code=request.code, versions=[convert.version_to_proto(v) for v in versions])

    async def ListResources(
        self, request: pb.ListResourcesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResourcesResponse:
        flt = convert.filter_from_proto(request)
        order = convert.order_from_proto(request)
        current().target = "catalog"
        page = await asyncio.to_thread(self.app.list, principal(), flt, request.page_size, request.page_token, order)
        return pb.ListResourcesResponse(
            resources=[convert.resource_to_proto(r) for r in page.resources],
            next_page_token=page.next_page_token, total_size=page.total_size,
            total_is_lower_bound=page.total_is_lower_bound)

    async def ImportResources(
        self, request: pb.ImportResourcesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportResourcesResponse:
        entries: list = []
        for message in request.resources:
            try:
                entries.append(convert.metadata_from_proto(message))
            except InvalidField as error:
                entries.append(error)
        current().target = f"catalog:import {len(entries)} resources"
        result = await asyncio.to_thread(
            self.app.import_resources, principal(), entries, publish=request.publish, replace_drafts=request.replace_drafts,
            upsert=request.upsert)
        return pb.ImportResourcesResponse(created=result.created, updated=result.updated, published=result.published,
                                          unchanged=result.unchanged)

    async def ExportResources(
        self, request: pb.ExportResourcesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Resource]:
        status = convert.status_from_proto(request.status)
        current().target = "catalog:export"
        resources = await asyncio.to_thread(self.app.export, principal(), status)
        for resource in resources:
            yield convert.resource_to_proto(resource)

    async def WatchCatalog(
        self, request: pb.WatchCatalogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CatalogEvent]:
        current().target = "catalog:watch"
        caller = principal()
        flt = self.feed.event_filter(caller, request.provider_code, convert.watch_filter_from_proto(request),
                                     request.code_prefix)
        start = await asyncio.to_thread(self.feed.start, caller, request.resume_token,
                                        from_beginning=request.from_beginning)
        async for event, token in self.feed.follow(caller, start, flt):
            yield convert.event_to_proto(event, token)
