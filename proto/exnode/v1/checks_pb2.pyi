import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HouseholdMember(_message.Message):
    __slots__ = ("id_number", "name")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    name: str
    def __init__(self, id_number: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CheckTargetRef(_message.Message):
    __slots__ = ("name", "category")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    name: str
    category: str
    def __init__(self, name: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class FileCheckRequest(_message.Message):
    __slots__ = ("members", "purpose", "authorisation", "targets", "deadline")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    AUTHORISATION_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[HouseholdMember]
    purpose: str
    authorisation: str
    targets: _containers.RepeatedCompositeFieldContainer[CheckTargetRef]
    deadline: _timestamp_pb2.Timestamp
    def __init__(self, members: _Optional[_Iterable[_Union[HouseholdMember, _Mapping]]] = ..., purpose: _Optional[str] = ..., authorisation: _Optional[str] = ..., targets: _Optional[_Iterable[_Union[CheckTargetRef, _Mapping]]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckTargetState(_message.Message):
    __slots__ = ("name", "category", "state", "reason", "findings", "answered_at", "key_id", "signature")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    category: str
    state: str
    reason: str
    findings: bytes
    answered_at: _timestamp_pb2.Timestamp
    key_id: str
    signature: str
    def __init__(self, name: _Optional[str] = ..., category: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., findings: _Optional[bytes] = ..., answered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class HouseholdCheck(_message.Message):
    __slots__ = ("id", "requester_code", "members", "purpose", "authorisation", "deadline", "created_at", "targets", "complete")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_CODE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    AUTHORISATION_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    id: str
    requester_code: str
    members: _containers.RepeatedCompositeFieldContainer[HouseholdMember]
    purpose: str
    authorisation: str
    deadline: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    targets: _containers.RepeatedCompositeFieldContainer[CheckTargetState]
    complete: bool
    def __init__(self, id: _Optional[str] = ..., requester_code: _Optional[str] = ..., members: _Optional[_Iterable[_Union[HouseholdMember, _Mapping]]] = ..., purpose: _Optional[str] = ..., authorisation: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., targets: _Optional[_Iterable[_Union[CheckTargetState, _Mapping]]] = ..., complete: _Optional[bool] = ...) -> None: ...

class GetCheckRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExportCheckRequest(_message.Message):
    __slots__ = ("id", "format")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    id: str
    format: str
    def __init__(self, id: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class ExportCheckResponse(_message.Message):
    __slots__ = ("content", "filename")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    filename: str
    def __init__(self, content: _Optional[bytes] = ..., filename: _Optional[str] = ...) -> None: ...
