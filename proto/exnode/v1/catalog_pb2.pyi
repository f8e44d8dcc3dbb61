import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Classification(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLASSIFICATION_UNSPECIFIED: _ClassVar[Classification]
    BASIC: _ClassVar[Classification]
    THEMATIC: _ClassVar[Classification]
    DEPARTMENTAL: _ClassVar[Classification]

class ShareType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHARE_TYPE_UNSPECIFIED: _ClassVar[ShareType]
    SHARE_UNCONDITIONAL: _ClassVar[ShareType]
    SHARE_CONDITIONAL: _ClassVar[ShareType]
    SHARE_NOT_SHARED: _ClassVar[ShareType]

class OpenType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPEN_TYPE_UNSPECIFIED: _ClassVar[OpenType]
    OPEN_UNCONDITIONAL: _ClassVar[OpenType]
    OPEN_CONDITIONAL: _ClassVar[OpenType]
    OPEN_NOT_OPEN: _ClassVar[OpenType]

class UpdateCycle(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPDATE_CYCLE_UNSPECIFIED: _ClassVar[UpdateCycle]
    REALTIME: _ClassVar[UpdateCycle]
    DAILY: _ClassVar[UpdateCycle]
    WEEKLY: _ClassVar[UpdateCycle]
    TEN_DAYS: _ClassVar[UpdateCycle]
    MONTHLY: _ClassVar[UpdateCycle]
    QUARTERLY: _ClassVar[UpdateCycle]
    HALF_YEARLY: _ClassVar[UpdateCycle]
    YEARLY: _ClassVar[UpdateCycle]
    OTHER_CYCLE: _ClassVar[UpdateCycle]

class FormatClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORMAT_CLASS_UNSPECIFIED: _ClassVar[FormatClass]
    ELECTRONIC_FILE: _ClassVar[FormatClass]
    SPREADSHEET: _ClassVar[FormatClass]
    DATABASE: _ClassVar[FormatClass]
    IMAGE: _ClassVar[FormatClass]
    STREAMING: _ClassVar[FormatClass]
    SELF_DESCRIBING: _ClassVar[FormatClass]
    OTHER_FORMAT: _ClassVar[FormatClass]

class ShareMethodClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHARE_METHOD_CLASS_UNSPECIFIED: _ClassVar[ShareMethodClass]
    VIA_PLATFORM: _ClassVar[ShareMethodClass]
    VIA_EMAIL: _ClassVar[ShareMethodClass]
    VIA_MEDIA: _ClassVar[ShareMethodClass]

class ShareMethodType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHARE_METHOD_TYPE_UNSPECIFIED: _ClassVar[ShareMethodType]
    BY_DATABASE: _ClassVar[ShareMethodType]
    BY_INTERFACE: _ClassVar[ShareMethodType]
    BY_FILE: _ClassVar[ShareMethodType]

class ResourceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOURCE_STATUS_UNSPECIFIED: _ClassVar[ResourceStatus]
    DRAFT: _ClassVar[ResourceStatus]
    PUBLISHED: _ClassVar[ResourceStatus]
    RETIRED: _ClassVar[ResourceStatus]

class VersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_STATE_UNSPECIFIED: _ClassVar[VersionState]
    VERSION_DRAFT: _ClassVar[VersionState]
    VERSION_PUBLISHED: _ClassVar[VersionState]

class SearchOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_ORDER_CODE: _ClassVar[SearchOrder]
    SEARCH_ORDER_RELEVANCE: _ClassVar[SearchOrder]

class CatalogEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATALOG_EVENT_KIND_UNSPECIFIED: _ClassVar[CatalogEventKind]
    CREATED: _ClassVar[CatalogEventKind]
    UPDATED: _ClassVar[CatalogEventKind]
    PUBLISHED_EVENT: _ClassVar[CatalogEventKind]
    RETIRED_EVENT: _ClassVar[CatalogEventKind]
    CAUGHT_UP: _ClassVar[CatalogEventKind]
CLASSIFICATION_UNSPECIFIED: Classification
BASIC: Classification
THEMATIC: Classification
DEPARTMENTAL: Classification
SHARE_TYPE_UNSPECIFIED: ShareType
SHARE_UNCONDITIONAL: ShareType
SHARE_CONDITIONAL: ShareType
SHARE_NOT_SHARED: ShareType
OPEN_TYPE_UNSPECIFIED: OpenType
OPEN_UNCONDITIONAL: OpenType
OPEN_CONDITIONAL: OpenType
OPEN_NOT_OPEN: OpenType
UPDATE_CYCLE_UNSPECIFIED: UpdateCycle
REALTIME: UpdateCycle
DAILY: UpdateCycle
WEEKLY: UpdateCycle
TEN_DAYS: UpdateCycle
MONTHLY: UpdateCycle
QUARTERLY: UpdateCycle
HALF_YEARLY: UpdateCycle
YEARLY: UpdateCycle
OTHER_CYCLE: UpdateCycle
FORMAT_CLASS_UNSPECIFIED: FormatClass
ELECTRONIC_FILE: FormatClass
SPREADSHEET: FormatClass
DATABASE: FormatClass
IMAGE: FormatClass
STREAMING: FormatClass
SELF_DESCRIBING: FormatClass
OTHER_FORMAT: FormatClass
SHARE_METHOD_CLASS_UNSPECIFIED: ShareMethodClass
VIA_PLATFORM: ShareMethodClass
VIA_EMAIL: ShareMethodClass
VIA_MEDIA: ShareMethodClass
SHARE_METHOD_TYPE_UNSPECIFIED: ShareMethodType
BY_DATABASE: ShareMethodType
BY_INTERFACE: ShareMethodType
BY_FILE: ShareMethodType
RESOURCE_STATUS_UNSPECIFIED: ResourceStatus
DRAFT: ResourceStatus
PUBLISHED: ResourceStatus
RETIRED: ResourceStatus
VERSION_STATE_UNSPECIFIED: VersionState
VERSION_DRAFT: VersionState
VERSION_PUBLISHED: VersionState
SEARCH_ORDER_CODE: SearchOrder
SEARCH_ORDER_RELEVANCE: SearchOrder
CATALOG_EVENT_KIND_UNSPECIFIED: CatalogEventKind
CREATED: CatalogEventKind
UPDATED: CatalogEventKind
PUBLISHED_EVENT: CatalogEventKind
RETIRED_EVENT: CatalogEventKind
CAUGHT_UP: CatalogEventKind

class Item(_message.Message):
    __slots__ = ("name", "data_type", "length", "required", "description", "key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    data_type: str
    length: int
    required: bool
    description: str
    key: bool
    def __init__(self, name: _Optional[str] = ..., data_type: _Optional[str] = ..., length: _Optional[int] = ..., required: _Optional[bool] = ..., description: _Optional[str] = ..., key: _Optional[bool] = ...) -> None: ...

class ResourceMetadata(_message.Message):
    __slots__ = ("code", "name", "classification", "provider_name", "provider_code", "summary", "format_class", "format_type", "format_description", "items", "share_type", "share_condition", "share_method_class", "share_method_type", "open_type", "open_condition", "update_cycle", "publish_date", "related_codes", "keywords")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_CLASS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SHARE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHARE_CONDITION_FIELD_NUMBER: _ClassVar[int]
    SHARE_METHOD_CLASS_FIELD_NUMBER: _ClassVar[int]
    SHARE_METHOD_TYPE_FIELD_NUMBER: _ClassVar[int]
    OPEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    OPEN_CONDITION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_CYCLE_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_DATE_FIELD_NUMBER: _ClassVar[int]
    RELATED_CODES_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    classification: Classification
    provider_name: str
    provider_code: str
    summary: str
    format_class: FormatClass
    format_type: str
    format_description: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    share_type: ShareType
    share_condition: str
    share_method_class: ShareMethodClass
    share_method_type: ShareMethodType
    open_type: OpenType
    open_condition: str
    update_cycle: UpdateCycle
    publish_date: str
    related_codes: _containers.RepeatedScalarFieldContainer[str]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., classification: _Optional[_Union[Classification, str]] = ..., provider_name: _Optional[str] = ..., provider_code: _Optional[str] = ..., summary: _Optional[str] = ..., format_class: _Optional[_Union[FormatClass, str]] = ..., format_type: _Optional[str] = ..., format_description: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., share_type: _Optional[_Union[ShareType, str]] = ..., share_condition: _Optional[str] = ..., share_method_class: _Optional[_Union[ShareMethodClass, str]] = ..., share_method_type: _Optional[_Union[ShareMethodType, str]] = ..., open_type: _Optional[_Union[OpenType, str]] = ..., open_condition: _Optional[str] = ..., update_cycle: _Optional[_Union[UpdateCycle, str]] = ..., publish_date: _Optional[str] = ..., related_codes: _Optional[_Iterable[str]] = ..., keywords: _Optional[_Iterable[str]] = ...) -> None: ...

class ResourceVersion(_message.Message):
    __slots__ = ("metadata", "version", "state", "created_at", "published_at")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    metadata: ResourceMetadata
    version: int
    state: VersionState
    created_at: _timestamp_pb2.Timestamp
    published_at: _timestamp_pb2.Timestamp
    def __init__(self, metadata: _Optional[_Union[ResourceMetadata, _Mapping]] = ..., version: _Optional[int] = ..., state: _Optional[_Union[VersionState, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("code", "status", "version", "latest_version", "published_version", "retired_at", "origin_node")
    CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_VERSION_FIELD_NUMBER: _ClassVar[int]
    RETIRED_AT_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_NODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    status: ResourceStatus
    version: ResourceVersion
    latest_version: int
    published_version: int
    retired_at: _timestamp_pb2.Timestamp
    origin_node: str
    def __init__(self, code: _Optional[str] = ..., status: _Optional[_Union[ResourceStatus, str]] = ..., version: _Optional[_Union[ResourceVersion, _Mapping]] = ..., latest_version: _Optional[int] = ..., published_version: _Optional[int] = ..., retired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., origin_node: _Optional[str] = ...) -> None: ...

class CreateResourceRequest(_message.Message):
    __slots__ = ("metadata",)
    METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: ResourceMetadata
    def __init__(self, metadata: _Optional[_Union[ResourceMetadata, _Mapping]] = ...) -> None: ...

class UpdateResourceRequest(_message.Message):
    __slots__ = ("metadata", "expected_version")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    metadata: ResourceMetadata
    expected_version: int
    def __init__(self, metadata: _Optional[_Union[ResourceMetadata, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class PublishResourceRequest(_message.Message):
    __slots__ = ("code", "expected_version")
    CODE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    code: str
    expected_version: int
    def __init__(self, code: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class RetireResourceRequest(_message.Message):
    __slots__ = ("code", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: str
    reason: str
    def __init__(self, code: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetResourceRequest(_message.Message):
    __slots__ = ("code", "version")
    CODE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    code: str
    version: int
    def __init__(self, code: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListResourceHistoryRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class ListResourceHistoryResponse(_message.Message):
    __slots__ = ("code", "versions")
    CODE_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    code: str
    versions: _containers.RepeatedCompositeFieldContainer[ResourceVersion]
    def __init__(self, code: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ResourceVersion, _Mapping]]] = ...) -> None: ...

class ListResourcesRequest(_message.Message):
    __slots__ = ("classification", "provider_code", "share_type", "open_type", "update_cycle", "status", "query", "code_prefix", "page_size", "page_token", "order")
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    SHARE_TYPE_FIELD_NUMBER: _ClassVar[int]
    OPEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_CYCLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CODE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    classification: Classification
    provider_code: str
    share_type: ShareType
    open_type: OpenType
    update_cycle: UpdateCycle
    status: ResourceStatus
    query: str
    code_prefix: str
    page_size: int
    page_token: str
    order: SearchOrder
    def __init__(self, classification: _Optional[_Union[Classification, str]] = ..., provider_code: _Optional[str] = ..., share_type: _Optional[_Union[ShareType, str]] = ..., open_type: _Optional[_Union[OpenType, str]] = ..., update_cycle: _Optional[_Union[UpdateCycle, str]] = ..., status: _Optional[_Union[ResourceStatus, str]] = ..., query: _Optional[str] = ..., code_prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., order: _Optional[_Union[SearchOrder, str]] = ...) -> None: ...

class ListResourcesResponse(_message.Message):
    __slots__ = ("resources", "next_page_token", "total_size", "total_is_lower_bound")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_IS_LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    next_page_token: str
    total_size: int
    total_is_lower_bound: bool
    def __init__(self, resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ..., total_is_lower_bound: _Optional[bool] = ...) -> None: ...

class ImportResourcesRequest(_message.Message):
    __slots__ = ("resources", "publish", "replace_drafts", "upsert")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    REPLACE_DRAFTS_FIELD_NUMBER: _ClassVar[int]
    UPSERT_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[ResourceMetadata]
    publish: bool
    replace_drafts: bool
    upsert: bool
    def __init__(self, resources: _Optional[_Iterable[_Union[ResourceMetadata, _Mapping]]] = ..., publish: _Optional[bool] = ..., replace_drafts: _Optional[bool] = ..., upsert: _Optional[bool] = ...) -> None: ...

class ImportResourcesResponse(_message.Message):
    __slots__ = ("created", "updated", "published", "unchanged")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    created: int
    updated: int
    published: int
    unchanged: int
    def __init__(self, created: _Optional[int] = ..., updated: _Optional[int] = ..., published: _Optional[int] = ..., unchanged: _Optional[int] = ...) -> None: ...

class ExportResourcesRequest(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: ResourceStatus
    def __init__(self, status: _Optional[_Union[ResourceStatus, str]] = ...) -> None: ...

class CatalogEvent(_message.Message):
    __slots__ = ("sequence", "kind", "code", "version", "at", "resume_token", "provider_code", "name", "classification")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: CatalogEventKind
    code: str
    version: int
    at: _timestamp_pb2.Timestamp
    resume_token: str
    provider_code: str
    name: str
    classification: Classification
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[_Union[CatalogEventKind, str]] = ..., code: _Optional[str] = ..., version: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resume_token: _Optional[str] = ..., provider_code: _Optional[str] = ..., name: _Optional[str] = ..., classification: _Optional[_Union[Classification, str]] = ...) -> None: ...

class WatchCatalogRequest(_message.Message):
    __slots__ = ("resume_token", "from_beginning", "provider_code", "classification", "code_prefix")
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FROM_BEGINNING_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    CODE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    resume_token: str
    from_beginning: bool
    provider_code: str
    classification: Classification
    code_prefix: str
    def __init__(self, resume_token: _Optional[str] = ..., from_beginning: _Optional[bool] = ..., provider_code: _Optional[str] = ..., classification: _Optional[_Union[Classification, str]] = ..., code_prefix: _Optional[str] = ...) -> None: ...
