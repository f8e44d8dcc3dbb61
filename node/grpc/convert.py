"""Proto ↔ domain conversion for the catalog (one place, so servicers stay thin)."""

from __future__ import annotations

import datetime as dt
import functools

from exnode.v1 import catalog_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from catalog.errors import FieldProblem, InvalidField
from catalog.interchange import parse_date
from catalog.model import (
    Classification,
    FormatClass,
    Item,
    ItemDataType,
    LabelledEnum,
    OpenType,
    Resource,
    ResourceMetadata,
    ResourceStatus,
    ResourceVersion,
    ShareMethodClass,
    ShareMethodType,
    ShareType,
    UpdateCycle,
    VersionState,
)
from node.services.catalog import SearchOrder
from node.services.catalog_feed import CaughtUp, FeedEvent
from node.storage.catalog_repository import ResourceFilter

# Domain enums carry the standard's numbers, and the proto enums use the same numbers.
_ENUMS: dict[str, type[LabelledEnum]] = {
    "classification": Classification,
    "format_class": FormatClass,
    "share_type": ShareType,
    "open_type": OpenType,
    "update_cycle": UpdateCycle,
    "share_method_class": ShareMethodClass,
    "share_method_type": ShareMethodType,
}
_PROTO_ENUMS = {
    "classification": pb.Classification,
    "format_class": pb.FormatClass,
    "share_type": pb.ShareType,
    "open_type": pb.OpenType,
    "update_cycle": pb.UpdateCycle,
    "share_method_class": pb.ShareMethodClass,
    "share_method_type": pb.ShareMethodType,
}


def _from_number(kind: type[LabelledEnum], number: int) -> LabelledEnum | None:
    for member in kind:
        if member.number == number:
            return member
    return None


def _enum(field: str, number: int, problems: list[FieldProblem], optional: bool = False) -> LabelledEnum | None:
    if number == 0:
        if not optional:
            problems.append(FieldProblem(field, "is required"))
        return None
    member = _from_number(_ENUMS[field], number)
    if member is None:
        problems.append(FieldProblem(field, f"unknown enumeration value {number}"))
    return member


def metadata_from_proto(msg: pb.ResourceMetadata) -> ResourceMetadata:
    problems: list[FieldProblem] = []
    items = []
    for index, item in enumerate(msg.items):
        try:
            data_type = ItemDataType.parse(item.data_type, f"items[{index}].data_type")
        except InvalidField as error:
            problems.extend(error.problems)
            continue
        items.append(Item(item.name, data_type, item.length, item.required, item.description, item.key))
    publish_date = None
    if msg.publish_date:
        try:
            publish_date = parse_date(msg.publish_date, "publish_date")
        except InvalidField as error:
            problems.extend(error.problems)
    enums = {
        field: _enum(field, getattr(msg, field), problems, optional=field.startswith("share_method"))
        for field in _ENUMS
    }
    if problems:
        raise InvalidField(problems)
    return ResourceMetadata(
        code=msg.code, name=msg.name, provider_name=msg.provider_name, provider_code=msg.provider_code,
        summary=msg.summary, format_type=msg.format_type, format_description=msg.format_description,
        items=tuple(items), share_condition=msg.share_condition, open_condition=msg.open_condition,
        publish_date=publish_date, related_codes=tuple(msg.related_codes), keywords=tuple(msg.keywords),
        **enums,  # type: ignore[arg-type]
    )


def metadata_to_proto(meta: ResourceMetadata) -> pb.ResourceMetadata:
    msg = pb.ResourceMetadata(
        code=meta.code, name=meta.name, provider_name=meta.provider_name, provider_code=meta.provider_code,
        summary=meta.summary, format_type=meta.format_type, format_description=meta.format_description,
        share_condition=meta.share_condition, open_condition=meta.open_condition,
        publish_date=meta.publish_date.isoformat() if meta.publish_date else "",
        related_codes=list(meta.related_codes), keywords=list(meta.keywords),
        items=[pb.Item(name=i.name, data_type=i.data_type.value, length=i.length, required=i.required,
                       description=i.description, key=i.key) for i in meta.items],
    )
    for field in _ENUMS:
        value = getattr(meta, field)
        setattr(msg, field, value.number if value is not None else 0)
    return msg


def timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(dt.UTC))
    return stamp


def version_to_proto(version: ResourceVersion) -> pb.ResourceVersion:
    return pb.ResourceVersion(
        metadata=metadata_to_proto(version.metadata), version=version.version,
        state=pb.VERSION_DRAFT if version.state is VersionState.DRAFT else pb.VERSION_PUBLISHED,
        created_at=timestamp(version.created_at), published_at=timestamp(version.published_at),
    )


def resource_to_proto(resource: Resource, version: ResourceVersion | None = None) -> pb.Resource:
    return pb.Resource(
        code=resource.code, status=resource.status.number, version=version_to_proto(version or resource.latest),
        latest_version=resource.latest.version, published_version=resource.published_version or 0,
        retired_at=timestamp(resource.retired_at), origin_node=resource.origin_node,
    )


def status_from_proto(number: int, field: str = "status") -> ResourceStatus | None:
    if number == 0:
        return None
    member = _from_number(ResourceStatus, number)
    if member is None:
        raise InvalidField.one(field, f"unknown enumeration value {number}")
    return member  # type: ignore[return-value]


def filter_from_proto(request: pb.ListResourcesRequest) -> ResourceFilter:
    problems: list[FieldProblem] = []
    enums = {
        field: _enum(field, getattr(request, field), problems, optional=True)
        for field in ("classification", "share_type", "open_type", "update_cycle")
    }
    status = None
    try:
        status = status_from_proto(request.status)
    except InvalidField as error:
        problems.extend(error.problems)
    if problems:
        raise InvalidField(problems)
    return ResourceFilter(provider_code=request.provider_code, status=status, query=request.query,
                          code_prefix=request.code_prefix, **enums)  # type: ignore[arg-type]


def order_from_proto(request: pb.ListResourcesRequest) -> SearchOrder:
    """The page order asked for; a number this node does not know is INVALID_ARGUMENT naming ``order``."""
    if request.order == pb.SEARCH_ORDER_RELEVANCE:
        return SearchOrder.RELEVANCE
    if request.order != pb.SEARCH_ORDER_CODE:
        raise InvalidField.one("order", f"{request.order} is not a search order")
    return SearchOrder.CODE


def timestamp_of(message: object, field: str) -> dt.datetime | None:
    """A request's google.protobuf.Timestamp field as an aware UTC datetime, None when unset; a value outside
    0001-01-01..9999-12-31 or with nanos outside 0..999,999,999 is INVALID_ARGUMENT naming the field."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    stamp: Timestamp = getattr(message, field)
    try:
        return stamp.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidField.one(field, f"is not a valid timestamp (seconds {stamp.seconds}, nanos {stamp.nanos})") \
            from None


def enum_name(field: str, value: LabelledEnum | None) -> str:
    """The proto enum's name for a domain value (for CLI output)."""
    if value is None:
        return ""
    return _PROTO_ENUMS[field].Name(value.number)


_EVENT_KINDS = {"CREATED": pb.CREATED, "UPDATED": pb.UPDATED, "PUBLISHED": pb.PUBLISHED_EVENT,
                "RETIRED": pb.RETIRED_EVENT}


def watch_filter_from_proto(request: pb.WatchCatalogRequest) -> Classification | None:
    """The classification filter of a watch (the other filters are plain strings)."""
    problems: list[FieldProblem] = []
    classification = _enum("classification", request.classification, problems, optional=True)
    if problems:
        raise InvalidField(problems)
    return classification  # type: ignore[return-value]


def event_to_proto(event: FeedEvent | CaughtUp, resume_token: str) -> pb.CatalogEvent:
    if isinstance(event, CaughtUp):
        return pb.CatalogEvent(sequence=event.position, kind=pb.CAUGHT_UP, resume_token=resume_token)
    message = pb.CatalogEvent()
    message.CopyFrom(_event_message(event))
    message.resume_token = resume_token
    return message


@functools.lru_cache(maxsize=4096)
def _event_message(event: FeedEvent) -> pb.CatalogEvent:
    """An event's message without its resume token, built once for all the watchers it goes to (never
    changed: each stream gets a copy with its own token)."""
    classification = next((c.number for c in Classification if c.value == event.classification), 0)
    return pb.CatalogEvent(
        sequence=event.position, kind=_EVENT_KINDS.get(event.kind, pb.CATALOG_EVENT_KIND_UNSPECIFIED),
        code=event.code, version=event.version, at=timestamp(event.at),
        provider_code=event.provider_code, name=event.name, classification=classification)
