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
DEMAND_STATE_UNSPECIFIED: DemandState
SUBMITTED: DemandState
UNDER_REVIEW: DemandState
APPROVED: DemandState
REJECTED: DemandState
FULFILLED: DemandState
WITHDRAWN: DemandState
EXPIRED: DemandState

class Obligation(_message.Message):
    __slots__ = ("id", "department_code", "resource_code", "update_cycle", "due_rule", "contact", "compliance", "last_delivery", "next_due")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_CYCLE_FIELD_NUMBER: _ClassVar[int]
    DUE_RULE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    LAST_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    NEXT_DUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    department_code: str
    resource_code: str
    update_cycle: str
    due_rule: str
    contact: str
    compliance: str
    last_delivery: _timestamp_pb2.Timestamp
    next_due: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., department_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., update_cycle: _Optional[str] = ..., due_rule: _Optional[str] = ..., contact: _Optional[str] = ..., compliance: _Optional[str] = ..., last_delivery: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_due: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Demand(_message.Message):
    __slots__ = ("id", "requester_code", "resource_code", "description", "items", "purpose", "legal_basis", "frequency", "contact", "state", "reason")
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
    def __init__(self, id: _Optional[str] = ..., requester_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., description: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., frequency: _Optional[str] = ..., contact: _Optional[str] = ..., state: _Optional[_Union[DemandState, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("id", "consumer_code", "resource_code", "items", "expires_at", "masking", "revoked")
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
    id: str
    consumer_code: str
    resource_code: str
    items: _containers.RepeatedScalarFieldContainer[str]
    expires_at: _timestamp_pb2.Timestamp
    masking: _containers.ScalarMap[str, str]
    revoked: bool
    def __init__(self, id: _Optional[str] = ..., consumer_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., masking: _Optional[_Mapping[str, str]] = ..., revoked: _Optional[bool] = ...) -> None: ...

class ListObligationsRequest(_message.Message):
    __slots__ = ("department_code", "page_token", "page_size")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    page_token: str
    page_size: int
    def __init__(self, department_code: _Optional[str] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListObligationsResponse(_message.Message):
    __slots__ = ("obligations", "next_page_token")
    OBLIGATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    obligations: _containers.RepeatedCompositeFieldContainer[Obligation]
    next_page_token: str
    def __init__(self, obligations: _Optional[_Iterable[_Union[Obligation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class FileDemandRequest(_message.Message):
    __slots__ = ("demand",)
    DEMAND_FIELD_NUMBER: _ClassVar[int]
    demand: Demand
    def __init__(self, demand: _Optional[_Union[Demand, _Mapping]] = ...) -> None: ...

class DecideDemandRequest(_message.Message):
    __slots__ = ("id", "approve", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    approve: bool
    reason: str
    def __init__(self, id: _Optional[str] = ..., approve: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

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

class ListGrantsRequest(_message.Message):
    __slots__ = ("department_code", "page_token", "page_size")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    page_token: str
    page_size: int
    def __init__(self, department_code: _Optional[str] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

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
