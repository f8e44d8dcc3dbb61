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
    COMPLIANCE_REVIEW: _ClassVar[DemandState]
    DISPUTED: _ClassVar[DemandState]

class DisputeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISPUTE_STATE_UNSPECIFIED: _ClassVar[DisputeState]
    AWAITING_PROVIDER: _ClassVar[DisputeState]
    AWAITING_COORDINATOR: _ClassVar[DisputeState]
    SETTLED: _ClassVar[DisputeState]
    GRANTED: _ClassVar[DisputeState]
    REFUSED: _ClassVar[DisputeState]

class Compliance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLIANCE_UNSPECIFIED: _ClassVar[Compliance]
    ON_TIME: _ClassVar[Compliance]
    OVERDUE: _ClassVar[Compliance]
    NEVER_DELIVERED: _ClassVar[Compliance]
    NOT_YET_DUE: _ClassVar[Compliance]
    UNSCHEDULED: _ClassVar[Compliance]

class ObjectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECTION_STATE_UNSPECIFIED: _ClassVar[ObjectionState]
    OBJECTION_OPEN: _ClassVar[ObjectionState]
    OBJECTION_CONFIRMED: _ClassVar[ObjectionState]
    OBJECTION_CORRECTED: _ClassVar[ObjectionState]
DEMAND_STATE_UNSPECIFIED: DemandState
SUBMITTED: DemandState
UNDER_REVIEW: DemandState
APPROVED: DemandState
REJECTED: DemandState
FULFILLED: DemandState
WITHDRAWN: DemandState
EXPIRED: DemandState
COMPLIANCE_REVIEW: DemandState
DISPUTED: DemandState
DISPUTE_STATE_UNSPECIFIED: DisputeState
AWAITING_PROVIDER: DisputeState
AWAITING_COORDINATOR: DisputeState
SETTLED: DisputeState
GRANTED: DisputeState
REFUSED: DisputeState
COMPLIANCE_UNSPECIFIED: Compliance
ON_TIME: Compliance
OVERDUE: Compliance
NEVER_DELIVERED: Compliance
NOT_YET_DUE: Compliance
UNSCHEDULED: Compliance
OBJECTION_STATE_UNSPECIFIED: ObjectionState
OBJECTION_OPEN: ObjectionState
OBJECTION_CONFIRMED: ObjectionState
OBJECTION_CORRECTED: ObjectionState

class Dispute(_message.Message):
    __slots__ = ("id", "demand_id", "requester_code", "provider_code", "resource_code", "duty_basis", "state", "filed_by", "provider_deadline", "provider_answer", "provider_by", "provider_at", "provider_late", "decision_reason", "conditions", "decided_by", "decided_at", "escalated_at", "grant_id", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_CODE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    DUTY_BASIS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FILED_BY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ANSWER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_BY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_LATE_FIELD_NUMBER: _ClassVar[int]
    DECISION_REASON_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_AT_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    demand_id: str
    requester_code: str
    provider_code: str
    resource_code: str
    duty_basis: str
    state: DisputeState
    filed_by: str
    provider_deadline: _timestamp_pb2.Timestamp
    provider_answer: str
    provider_by: str
    provider_at: _timestamp_pb2.Timestamp
    provider_late: bool
    decision_reason: str
    conditions: str
    decided_by: str
    decided_at: _timestamp_pb2.Timestamp
    escalated_at: _timestamp_pb2.Timestamp
    grant_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., demand_id: _Optional[str] = ..., requester_code: _Optional[str] = ..., provider_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., duty_basis: _Optional[str] = ..., state: _Optional[_Union[DisputeState, str]] = ..., filed_by: _Optional[str] = ..., provider_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider_answer: _Optional[str] = ..., provider_by: _Optional[str] = ..., provider_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider_late: _Optional[bool] = ..., decision_reason: _Optional[str] = ..., conditions: _Optional[str] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., escalated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., grant_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("id", "requester_code", "resource_code", "description", "items", "purpose", "legal_basis", "frequency", "contact", "state", "reason", "provider_code", "resource_name", "decided_by", "grant_id", "created_at", "updated_at", "review_deadline", "version", "compliance_deadline", "compliance_at", "compliance_by", "answer_deadline", "answered_at", "compliance_late", "answer_late", "escalated_at", "escalated_stage", "overdue", "kind", "daily_quota")
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
    COMPLIANCE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_BY_FIELD_NUMBER: _ClassVar[int]
    ANSWER_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_LATE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_LATE_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_AT_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_STAGE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
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
    compliance_deadline: _timestamp_pb2.Timestamp
    compliance_at: _timestamp_pb2.Timestamp
    compliance_by: str
    answer_deadline: _timestamp_pb2.Timestamp
    answered_at: _timestamp_pb2.Timestamp
    compliance_late: bool
    answer_late: bool
    escalated_at: _timestamp_pb2.Timestamp
    escalated_stage: str
    overdue: bool
    kind: str
    daily_quota: int
    def __init__(self, id: _Optional[str] = ..., requester_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., description: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., frequency: _Optional[str] = ..., contact: _Optional[str] = ..., state: _Optional[_Union[DemandState, str]] = ..., reason: _Optional[str] = ..., provider_code: _Optional[str] = ..., resource_name: _Optional[str] = ..., decided_by: _Optional[str] = ..., grant_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., review_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., compliance_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., compliance_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., compliance_by: _Optional[str] = ..., answer_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., answered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., compliance_late: _Optional[bool] = ..., answer_late: _Optional[bool] = ..., escalated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., escalated_stage: _Optional[str] = ..., overdue: _Optional[bool] = ..., kind: _Optional[str] = ..., daily_quota: _Optional[int] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("id", "consumer_code", "resource_code", "items", "expires_at", "masking", "revoked", "provider_code", "demand_id", "state", "revoked_reason", "created_at", "clear_delivery", "kind", "daily_quota", "purpose", "legal_basis")
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
    CLEAR_DELIVERY_FIELD_NUMBER: _ClassVar[int]
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
    clear_delivery: bool
    kind: str
    daily_quota: int
    purpose: str
    legal_basis: str
    def __init__(self, id: _Optional[str] = ..., consumer_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., masking: _Optional[_Mapping[str, str]] = ..., revoked: _Optional[bool] = ..., provider_code: _Optional[str] = ..., demand_id: _Optional[str] = ..., state: _Optional[str] = ..., revoked_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clear_delivery: _Optional[bool] = ..., kind: _Optional[str] = ..., daily_quota: _Optional[int] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("id", "approve", "reason", "items", "expires_at", "masking", "default_masking", "clear_delivery")
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
    CLEAR_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    id: str
    approve: bool
    reason: str
    items: _containers.RepeatedScalarFieldContainer[str]
    expires_at: _timestamp_pb2.Timestamp
    masking: _containers.ScalarMap[str, str]
    default_masking: bool
    clear_delivery: bool
    def __init__(self, id: _Optional[str] = ..., approve: _Optional[bool] = ..., reason: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., masking: _Optional[_Mapping[str, str]] = ..., default_masking: _Optional[bool] = ..., clear_delivery: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("department_code", "state", "page_token", "page_size", "escalated")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    state: DemandState
    page_token: str
    page_size: int
    escalated: bool
    def __init__(self, department_code: _Optional[str] = ..., state: _Optional[_Union[DemandState, str]] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ..., escalated: _Optional[bool] = ...) -> None: ...

class ReviewDemandRequest(_message.Message):
    __slots__ = ("id", "passed", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    passed: bool
    reason: str
    def __init__(self, id: _Optional[str] = ..., passed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ListDueDemandsRequest(_message.Message):
    __slots__ = ("date",)
    DATE_FIELD_NUMBER: _ClassVar[int]
    date: str
    def __init__(self, date: _Optional[str] = ...) -> None: ...

class ListDueDemandsResponse(_message.Message):
    __slots__ = ("demands", "date")
    DEMANDS_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    demands: _containers.RepeatedCompositeFieldContainer[Demand]
    date: str
    def __init__(self, demands: _Optional[_Iterable[_Union[Demand, _Mapping]]] = ..., date: _Optional[str] = ...) -> None: ...

class FileDisputeRequest(_message.Message):
    __slots__ = ("demand_id", "duty_basis")
    DEMAND_ID_FIELD_NUMBER: _ClassVar[int]
    DUTY_BASIS_FIELD_NUMBER: _ClassVar[int]
    demand_id: str
    duty_basis: str
    def __init__(self, demand_id: _Optional[str] = ..., duty_basis: _Optional[str] = ...) -> None: ...

class AnswerDisputeRequest(_message.Message):
    __slots__ = ("id", "agree", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGREE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    agree: bool
    reason: str
    def __init__(self, id: _Optional[str] = ..., agree: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class DecideDisputeRequest(_message.Message):
    __slots__ = ("id", "grant", "reason", "conditions", "items", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    grant: bool
    reason: str
    conditions: str
    items: _containers.RepeatedScalarFieldContainer[str]
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., grant: _Optional[bool] = ..., reason: _Optional[str] = ..., conditions: _Optional[str] = ..., items: _Optional[_Iterable[str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DisputeOutcome(_message.Message):
    __slots__ = ("dispute", "demand")
    DISPUTE_FIELD_NUMBER: _ClassVar[int]
    DEMAND_FIELD_NUMBER: _ClassVar[int]
    dispute: Dispute
    demand: Demand
    def __init__(self, dispute: _Optional[_Union[Dispute, _Mapping]] = ..., demand: _Optional[_Union[Demand, _Mapping]] = ...) -> None: ...

class GetDisputeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListDisputesRequest(_message.Message):
    __slots__ = ("department_code", "state", "page_token", "page_size")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    state: DisputeState
    page_token: str
    page_size: int
    def __init__(self, department_code: _Optional[str] = ..., state: _Optional[_Union[DisputeState, str]] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListDisputesResponse(_message.Message):
    __slots__ = ("disputes", "next_page_token")
    DISPUTES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    disputes: _containers.RepeatedCompositeFieldContainer[Dispute]
    next_page_token: str
    def __init__(self, disputes: _Optional[_Iterable[_Union[Dispute, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Objection(_message.Message):
    __slots__ = ("id", "provider_code", "resource_code", "record_id", "item", "raiser_code", "raised_by", "evidence", "attachments", "state", "created_at", "deadline", "answer", "answered_by", "answered_at", "late", "corrected_by", "escalated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    RAISER_CODE_FIELD_NUMBER: _ClassVar[int]
    RAISED_BY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_BY_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider_code: str
    resource_code: str
    record_id: str
    item: str
    raiser_code: str
    raised_by: str
    evidence: str
    attachments: _containers.RepeatedScalarFieldContainer[str]
    state: ObjectionState
    created_at: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    answer: str
    answered_by: str
    answered_at: _timestamp_pb2.Timestamp
    late: bool
    corrected_by: str
    escalated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., provider_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., record_id: _Optional[str] = ..., item: _Optional[str] = ..., raiser_code: _Optional[str] = ..., raised_by: _Optional[str] = ..., evidence: _Optional[str] = ..., attachments: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[ObjectionState, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., answer: _Optional[str] = ..., answered_by: _Optional[str] = ..., answered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., late: _Optional[bool] = ..., corrected_by: _Optional[str] = ..., escalated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RaiseObjectionRequest(_message.Message):
    __slots__ = ("resource_code", "record_id", "item", "evidence", "attachments")
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    resource_code: str
    record_id: str
    item: str
    evidence: str
    attachments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, resource_code: _Optional[str] = ..., record_id: _Optional[str] = ..., item: _Optional[str] = ..., evidence: _Optional[str] = ..., attachments: _Optional[_Iterable[str]] = ...) -> None: ...

class AnswerObjectionRequest(_message.Message):
    __slots__ = ("id", "corrected_record_id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    corrected_record_id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., corrected_record_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetObjectionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListObjectionsRequest(_message.Message):
    __slots__ = ("department_code", "resource_code", "state", "page_token", "page_size")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    resource_code: str
    state: ObjectionState
    page_token: str
    page_size: int
    def __init__(self, department_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., state: _Optional[_Union[ObjectionState, str]] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListObjectionsResponse(_message.Message):
    __slots__ = ("objections", "next_page_token")
    OBJECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    objections: _containers.RepeatedCompositeFieldContainer[Objection]
    next_page_token: str
    def __init__(self, objections: _Optional[_Iterable[_Union[Objection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class QualityRequest(_message.Message):
    __slots__ = ("provider_code",)
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    provider_code: str
    def __init__(self, provider_code: _Optional[str] = ...) -> None: ...

class QualityScore(_message.Message):
    __slots__ = ("resource_code", "provider_code", "records", "objections", "open", "upheld", "upheld_per_10k", "compliance", "missed_periods")
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIONS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    UPHELD_FIELD_NUMBER: _ClassVar[int]
    UPHELD_PER_10K_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_FIELD_NUMBER: _ClassVar[int]
    MISSED_PERIODS_FIELD_NUMBER: _ClassVar[int]
    resource_code: str
    provider_code: str
    records: int
    objections: int
    open: int
    upheld: int
    upheld_per_10k: float
    compliance: Compliance
    missed_periods: int
    def __init__(self, resource_code: _Optional[str] = ..., provider_code: _Optional[str] = ..., records: _Optional[int] = ..., objections: _Optional[int] = ..., open: _Optional[int] = ..., upheld: _Optional[int] = ..., upheld_per_10k: _Optional[float] = ..., compliance: _Optional[_Union[Compliance, str]] = ..., missed_periods: _Optional[int] = ...) -> None: ...

class QualityResponse(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[QualityScore]
    def __init__(self, scores: _Optional[_Iterable[_Union[QualityScore, _Mapping]]] = ...) -> None: ...

class MonthlyReportRequest(_message.Message):
    __slots__ = ("month", "region")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    month: str
    region: bool
    def __init__(self, month: _Optional[str] = ..., region: _Optional[bool] = ...) -> None: ...

class SendReportResponse(_message.Message):
    __slots__ = ("queues", "resources", "departments", "includes")
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedScalarFieldContainer[str]
    resources: int
    departments: int
    includes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, queues: _Optional[_Iterable[str]] = ..., resources: _Optional[int] = ..., departments: _Optional[int] = ..., includes: _Optional[_Iterable[str]] = ...) -> None: ...

class ReportFile(_message.Message):
    __slots__ = ("name", "content")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    content: bytes
    def __init__(self, name: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class MonthlyReportResponse(_message.Message):
    __slots__ = ("files", "node_id", "month", "key_id", "algorithm", "signature")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[ReportFile]
    node_id: str
    month: str
    key_id: str
    algorithm: str
    signature: bytes
    def __init__(self, files: _Optional[_Iterable[_Union[ReportFile, _Mapping]]] = ..., node_id: _Optional[str] = ..., month: _Optional[str] = ..., key_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class TimelinessRequest(_message.Message):
    __slots__ = ("department_code", "since", "until")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    since: str
    until: str
    def __init__(self, department_code: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class StageTimeliness(_message.Message):
    __slots__ = ("stage", "on_time", "late", "open_within", "open_overdue")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ON_TIME_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    OPEN_WITHIN_FIELD_NUMBER: _ClassVar[int]
    OPEN_OVERDUE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    on_time: int
    late: int
    open_within: int
    open_overdue: int
    def __init__(self, stage: _Optional[str] = ..., on_time: _Optional[int] = ..., late: _Optional[int] = ..., open_within: _Optional[int] = ..., open_overdue: _Optional[int] = ...) -> None: ...

class TimelinessResponse(_message.Message):
    __slots__ = ("stages",)
    STAGES_FIELD_NUMBER: _ClassVar[int]
    stages: _containers.RepeatedCompositeFieldContainer[StageTimeliness]
    def __init__(self, stages: _Optional[_Iterable[_Union[StageTimeliness, _Mapping]]] = ...) -> None: ...

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
