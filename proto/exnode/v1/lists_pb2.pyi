import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DemandState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEMAND_STATE_UNSPECIFIED: _ClassVar[DemandState]
    SUBMITTED: _ClassVar[DemandState]
    UNDER_REVIEW: _ClassVar[DemandState]
    APPROVED: _ClassVar[DemandState]
    REJECTED: _ClassVar[DemandState]
    FULFILLED: _ClassVar[DemandState]
    WITHDRAWN: _ClassVar[DemandState]
    EXPIRED: _ClassVar[DemandState]

class Compliance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLIANCE_UNSPECIFIED: _ClassVar[Compliance]
    ON_TIME: _ClassVar[Compliance]
    OVERDUE: _ClassVar[Compliance]
    NEVER_DELIVERED: _ClassVar[Compliance]
    NOT_YET_DUE: _ClassVar[Compliance]
    UNSCHEDULED: _ClassVar[Compliance]
DEMAND_STATE_UNSPECIFIED: DemandState
SUBMITTED: DemandState
UNDER_REVIEW: DemandState
APPROVED: DemandState
REJECTED: DemandState
FULFILLED: DemandState
WITHDRAWN: DemandState
EXPIRED: DemandState
COMPLIANCE_UNSPECIFIED: Compliance
ON_TIME: Compliance
OVERDUE: Compliance
NEVER_DELIVERED: Compliance
NOT_YET_DUE: Compliance
UNSCHEDULED: Compliance

class Obligation(_message.Message):
    __slots__ = ("department_code", "resource_code", "resource_name", "update_cycle", "due_rule", "grace_days", "contact", "explicit", "compliance", "last_delivery", "next_due", "overdue_seconds", "missed_periods", "deliveries", "provider_name")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_CYCLE_FIELD_NUMBER: _ClassVar[int]
    DUE_RULE_FIELD_NUMBER: _ClassVar[int]
    GRACE_DAYS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    EXPLICIT_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    LAST_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    NEXT_DUE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MISSED_PERIODS_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_NAME_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    resource_code: str
    resource_name: str
    update_cycle: str
    due_rule: str
    grace_days: int
    contact: str
    explicit: bool
    compliance: Compliance
    last_delivery: _timestamp_pb2.Timestamp
    next_due: _timestamp_pb2.Timestamp
    overdue_seconds: int
    missed_periods: int
    deliveries: int
    provider_name: str
    def __init__(self, department_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., resource_name: _Optional[str] = ..., update_cycle: _Optional[str] = ..., due_rule: _Optional[str] = ..., grace_days: _Optional[int] = ..., contact: _Optional[str] = ..., explicit: _Optional[bool] = ..., compliance: _Optional[_Union[Compliance, str]] = ..., last_delivery: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_due: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue_seconds: _Optional[int] = ..., missed_periods: _Optional[int] = ..., deliveries: _Optional[int] = ..., provider_name: _Optional[str] = ...) -> None: ...

class Demand(_message.Message):
    __slots__ = ("id", "requester_code", "resource_code", "description", "items", "purpose", "legal_basis", "frequency", "contact", "state", "reason", "provider_code", "resource_name", "decided_by", "grant_id", "created_at", "updated_at", "review_deadline", "version", "kind", "daily_quota")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVIEW_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DAILY_QUOTA_FIELD_NUMBER: _ClassVar[int]
    id: str
    requester_code: str
    resource_code: str
    description: str
    items: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    legal_basis: str
    frequency: str
    contact: str
    state: DemandState
    reason: str
    provider_code: str
    resource_name: str
    decided_by: str
    grant_id: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    review_deadline: _timestamp_pb2.Timestamp
    version: int
    kind: str
    daily_quota: int
    def __init__(self, id: _Optional[str] = ..., requester_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., description: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., frequency: _Optional[str] = ..., contact: _Optional[str] = ..., state: _Optional[_Union[DemandState, str]] = ..., reason: _Optional[str] = ..., provider_code: _Optional[str] = ..., resource_name: _Optional[str] = ..., decided_by: _Optional[str] = ..., grant_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., review_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., kind: _Optional[str] = ..., daily_quota: _Optional[int] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("id", "consumer_code", "resource_code", "items", "expires_at", "masking", "revoked", "provider_code", "demand_id", "state", "revoked_reason", "created_at", "kind", "daily_quota", "purpose", "legal_basis")
    class MaskingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MASKING_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVOKED_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DAILY_QUOTA_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    id: str
    consumer_code: str
    resource_code: str
    items: _containers.RepeatedScalarFieldContainer[str]
    expires_at: _timestamp_pb2.Timestamp
    masking: _containers.ScalarMap[str, str]
    revoked: bool
    provider_code: str
    demand_id: str
    state: str
    revoked_reason: str
    created_at: _timestamp_pb2.Timestamp
    kind: str
    daily_quota: int
    purpose: str
    legal_basis: str
    def __init__(self, id: _Optional[str] = ..., consumer_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., masking: _Optional[_Mapping[str, str]] = ..., revoked: _Optional[bool] = ..., provider_code: _Optional[str] = ..., demand_id: _Optional[str] = ..., state: _Optional[str] = ..., revoked_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., daily_quota: _Optional[int] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ...) -> None: ...

class ListObligationsRequest(_message.Message):
    __slots__ = ("department_code", "compliance")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    compliance: Compliance
    def __init__(self, department_code: _Optional[str] = ..., compliance: _Optional[_Union[Compliance, str]] = ...) -> None: ...

class ListObligationsResponse(_message.Message):
    __slots__ = ("obligations",)
    OBLIGATIONS_FIELD_NUMBER: _ClassVar[int]
    obligations: _containers.RepeatedCompositeFieldContainer[Obligation]
    def __init__(self, obligations: _Optional[_Iterable[_Union[Obligation, _Mapping]]] = ...) -> None: ...

class AddObligationRequest(_message.Message):
    __slots__ = ("department_code", "resource_code", "update_cycle", "grace_days", "contact")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_CYCLE_FIELD_NUMBER: _ClassVar[int]
    GRACE_DAYS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    resource_code: str
    update_cycle: str
    grace_days: int
    contact: str
    def __init__(self, department_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., update_cycle: _Optional[str] = ..., grace_days: _Optional[int] = ..., contact: _Optional[str] = ...) -> None: ...

class FileDemandRequest(_message.Message):
    __slots__ = ("demand",)
    DEMAND_FIELD_NUMBER: _ClassVar[int]
    demand: Demand
    def __init__(self, demand: _Optional[_Union[Demand, _Mapping]] = ...) -> None: ...

class LinkDemandRequest(_message.Message):
    __slots__ = ("id", "resource_code")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    resource_code: str
    def __init__(self, id: _Optional[str] = ..., resource_code: _Optional[str] = ...) -> None: ...

class DecideDemandRequest(_message.Message):
    __slots__ = ("id", "approve", "reason", "items", "expires_at", "masking", "default_masking")
    class MaskingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MASKING_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MASKING_FIELD_NUMBER: _ClassVar[int]
    id: str
    approve: bool
    reason: str
    items: _containers.RepeatedScalarFieldContainer[str]
    expires_at: _timestamp_pb2.Timestamp
    masking: _containers.ScalarMap[str, str]
    default_masking: bool
    def __init__(self, id: _Optional[str] = ..., approve: _Optional[bool] = ..., reason: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., masking: _Optional[_Mapping[str, str]] = ..., default_masking: _Optional[bool] = ...) -> None: ...

class WithdrawDemandRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetDemandRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListDemandsRequest(_message.Message):
    __slots__ = ("department_code", "state", "page_token", "page_size")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    state: DemandState
    page_token: str
    page_size: int
    def __init__(self, department_code: _Optional[str] = ..., state: _Optional[_Union[DemandState, str]] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListDemandsResponse(_message.Message):
    __slots__ = ("demands", "next_page_token")
    DEMANDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    demands: _containers.RepeatedCompositeFieldContainer[Demand]
    next_page_token: str
    def __init__(self, demands: _Optional[_Iterable[_Union[Demand, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SuggestResourcesRequest(_message.Message):
    __slots__ = ("description", "items", "limit")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    description: str
    items: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    def __init__(self, description: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ...) -> None: ...

class Suggestion(_message.Message):
    __slots__ = ("resource_code", "name", "provider_name", "share_type", "score", "matched_items")
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_NAME_FIELD_NUMBER: _ClassVar[int]
    SHARE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    resource_code: str
    name: str
    provider_name: str
    share_type: str
    score: float
    matched_items: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, resource_code: _Optional[str] = ..., name: _Optional[str] = ..., provider_name: _Optional[str] = ..., share_type: _Optional[str] = ..., score: _Optional[float] = ..., matched_items: _Optional[_Iterable[str]] = ...) -> None: ...

class SuggestResourcesResponse(_message.Message):
    __slots__ = ("suggestions",)
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    suggestions: _containers.RepeatedCompositeFieldContainer[Suggestion]
    def __init__(self, suggestions: _Optional[_Iterable[_Union[Suggestion, _Mapping]]] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ("department_code", "page_token", "page_size", "resource_code")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    page_token: str
    page_size: int
    resource_code: str
    def __init__(self, department_code: _Optional[str] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ..., resource_code: _Optional[str] = ...) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants", "next_page_token")
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    next_page_token: str
    def __init__(self, grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeGrantRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ExportListRequest(_message.Message):
    __slots__ = ("list", "format", "department_code")
    LIST_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    list: str
    format: str
    department_code: str
    def __init__(self, list: _Optional[str] = ..., format: _Optional[str] = ..., department_code: _Optional[str] = ...) -> None: ...

class ExportListResponse(_message.Message):
    __slots__ = ("content", "filename")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    filename: str
    def __init__(self, content: _Optional[bytes] = ..., filename: _Optional[str] = ...) -> None: ...
