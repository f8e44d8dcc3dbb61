from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClaimResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLAIM_RESULT_UNSPECIFIED: _ClassVar[ClaimResult]
    MATCH: _ClassVar[ClaimResult]
    MISMATCH: _ClassVar[ClaimResult]
    NO_RECORD: _ClassVar[ClaimResult]
CLAIM_RESULT_UNSPECIFIED: ClaimResult
MATCH: ClaimResult
MISMATCH: ClaimResult
NO_RECORD: ClaimResult

class RecordKey(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, str]
    def __init__(self, values: _Optional[_Mapping[str, str]] = ...) -> None: ...

class QueryRecordsRequest(_message.Message):
    __slots__ = ("resource_code", "keys")
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    resource_code: str
    keys: _containers.RepeatedCompositeFieldContainer[RecordKey]
    def __init__(self, resource_code: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[RecordKey, _Mapping]]] = ...) -> None: ...

class KeyResult(_message.Message):
    __slots__ = ("index", "status", "key_hash", "record_id", "sequence", "payload", "disputed")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[KeyResult.Status]
        FOUND: _ClassVar[KeyResult.Status]
        NOT_FOUND: _ClassVar[KeyResult.Status]
    STATUS_UNSPECIFIED: KeyResult.Status
    FOUND: KeyResult.Status
    NOT_FOUND: KeyResult.Status
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DISPUTED_FIELD_NUMBER: _ClassVar[int]
    index: int
    status: KeyResult.Status
    key_hash: str
    record_id: str
    sequence: int
    payload: bytes
    disputed: bool
    def __init__(self, index: _Optional[int] = ..., status: _Optional[_Union[KeyResult.Status, str]] = ..., key_hash: _Optional[str] = ..., record_id: _Optional[str] = ..., sequence: _Optional[int] = ..., payload: _Optional[bytes] = ..., disputed: _Optional[bool] = ...) -> None: ...

class QueryRecordsResponse(_message.Message):
    __slots__ = ("resource_code", "grant_id", "results", "sealing", "request_id", "answered_by")
    class SealingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SEALING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    resource_code: str
    grant_id: str
    results: _containers.RepeatedCompositeFieldContainer[KeyResult]
    sealing: _containers.ScalarMap[str, str]
    request_id: str
    answered_by: str
    def __init__(self, resource_code: _Optional[str] = ..., grant_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[KeyResult, _Mapping]]] = ..., sealing: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ..., answered_by: _Optional[str] = ...) -> None: ...

class AssertedItem(_message.Message):
    __slots__ = ("item", "value")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    item: str
    value: str
    def __init__(self, item: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class VerifyClaimRequest(_message.Message):
    __slots__ = ("resource_code", "key", "claims")
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    resource_code: str
    key: RecordKey
    claims: _containers.RepeatedCompositeFieldContainer[AssertedItem]
    def __init__(self, resource_code: _Optional[str] = ..., key: _Optional[_Union[RecordKey, _Mapping]] = ..., claims: _Optional[_Iterable[_Union[AssertedItem, _Mapping]]] = ...) -> None: ...

class ClaimAnswer(_message.Message):
    __slots__ = ("item", "result")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    item: str
    result: ClaimResult
    def __init__(self, item: _Optional[str] = ..., result: _Optional[_Union[ClaimResult, str]] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("answers", "state", "grant_id", "request_hash", "document", "signature", "key_id", "request", "sealing", "sealed", "request_id", "disputed")
    class SealingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    SEALING_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DISPUTED_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[ClaimAnswer]
    state: str
    grant_id: str
    request_hash: str
    document: bytes
    signature: bytes
    key_id: str
    request: bytes
    sealing: _containers.ScalarMap[str, str]
    sealed: bytes
    request_id: str
    disputed: bool
    def __init__(self, answers: _Optional[_Iterable[_Union[ClaimAnswer, _Mapping]]] = ..., state: _Optional[str] = ..., grant_id: _Optional[str] = ..., request_hash: _Optional[str] = ..., document: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ..., request: _Optional[bytes] = ..., sealing: _Optional[_Mapping[str, str]] = ..., sealed: _Optional[bytes] = ..., request_id: _Optional[str] = ..., disputed: _Optional[bool] = ...) -> None: ...
