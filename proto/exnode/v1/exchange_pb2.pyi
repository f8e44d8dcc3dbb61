import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Operation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_UNSPECIFIED: _ClassVar[Operation]
    UPSERT: _ClassVar[Operation]
    DELETE: _ClassVar[Operation]
OPERATION_UNSPECIFIED: Operation
UPSERT: Operation
DELETE: Operation

class Record(_message.Message):
    __slots__ = ("id", "sequence", "operation", "payload", "at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    sequence: int
    operation: Operation
    payload: bytes
    at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., sequence: _Optional[int] = ..., operation: _Optional[_Union[Operation, str]] = ..., payload: _Optional[bytes] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("batch_id", "provider_code", "resource_code", "records", "merkle_root", "key_id", "signature")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MERKLE_ROOT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    provider_code: str
    resource_code: str
    records: _containers.RepeatedCompositeFieldContainer[Record]
    merkle_root: bytes
    key_id: str
    signature: bytes
    def __init__(self, batch_id: _Optional[str] = ..., provider_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., merkle_root: _Optional[bytes] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("batch_id", "accepted", "duplicates", "sequence_gaps", "subscribers")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_GAPS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    accepted: int
    duplicates: int
    sequence_gaps: _containers.RepeatedScalarFieldContainer[str]
    subscribers: int
    def __init__(self, batch_id: _Optional[str] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., sequence_gaps: _Optional[_Iterable[str]] = ..., subscribers: _Optional[int] = ...) -> None: ...

class RegisterKeyRequest(_message.Message):
    __slots__ = ("department_code", "algorithm", "public_pem")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_PEM_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    algorithm: str
    public_pem: str
    def __init__(self, department_code: _Optional[str] = ..., algorithm: _Optional[str] = ..., public_pem: _Optional[str] = ...) -> None: ...

class RegisteredKey(_message.Message):
    __slots__ = ("key_id", "department_code", "algorithm")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    department_code: str
    algorithm: str
    def __init__(self, key_id: _Optional[str] = ..., department_code: _Optional[str] = ..., algorithm: _Optional[str] = ...) -> None: ...

class RegisterEncryptionKeyRequest(_message.Message):
    __slots__ = ("department_code", "algorithm", "public_pem")
    DEPARTMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_PEM_FIELD_NUMBER: _ClassVar[int]
    department_code: str
    algorithm: str
    public_pem: str
    def __init__(self, department_code: _Optional[str] = ..., algorithm: _Optional[str] = ..., public_pem: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("resource_code", "platform")
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    resource_code: str
    platform: str
    def __init__(self, resource_code: _Optional[str] = ..., platform: _Optional[str] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("queue", "resource_code", "grant_id", "platform")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    queue: str
    resource_code: str
    grant_id: str
    platform: str
    def __init__(self, queue: _Optional[str] = ..., resource_code: _Optional[str] = ..., grant_id: _Optional[str] = ..., platform: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("batch_id", "record_ids", "receiver_code", "key_id", "signature")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_CODE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    record_ids: _containers.RepeatedScalarFieldContainer[str]
    receiver_code: str
    key_id: str
    signature: bytes
    def __init__(self, batch_id: _Optional[str] = ..., record_ids: _Optional[_Iterable[str]] = ..., receiver_code: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ReceiptAck(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class DeliveryStatusRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class PlatformDelivery(_message.Message):
    __slots__ = ("platform", "state", "attempts", "last_error")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    platform: str
    state: str
    attempts: int
    last_error: str
    def __init__(self, platform: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class DeliveryStatus(_message.Message):
    __slots__ = ("batch_id", "state", "detail", "platforms", "record_count")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    state: str
    detail: str
    platforms: _containers.RepeatedCompositeFieldContainer[PlatformDelivery]
    record_count: int
    def __init__(self, batch_id: _Optional[str] = ..., state: _Optional[str] = ..., detail: _Optional[str] = ..., platforms: _Optional[_Iterable[_Union[PlatformDelivery, _Mapping]]] = ..., record_count: _Optional[int] = ...) -> None: ...

class PullStart(_message.Message):
    __slots__ = ("cursor", "replay", "until_day", "sealed")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    UNTIL_DAY_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    replay: bool
    until_day: str
    sealed: bool
    def __init__(self, cursor: _Optional[str] = ..., replay: _Optional[bool] = ..., until_day: _Optional[str] = ..., sealed: _Optional[bool] = ...) -> None: ...

class PullAck(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("start", "ack")
    START_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    start: PullStart
    ack: PullAck
    def __init__(self, start: _Optional[_Union[PullStart, _Mapping]] = ..., ack: _Optional[_Union[PullAck, _Mapping]] = ...) -> None: ...

class PullHeader(_message.Message):
    __slots__ = ("node_id", "platform", "from_cursor", "window", "resumed")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    FROM_CURSOR_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    platform: str
    from_cursor: str
    window: int
    resumed: bool
    def __init__(self, node_id: _Optional[str] = ..., platform: _Optional[str] = ..., from_cursor: _Optional[str] = ..., window: _Optional[int] = ..., resumed: _Optional[bool] = ...) -> None: ...

class PullBatch(_message.Message):
    __slots__ = ("index", "from_cursor", "to_cursor", "records", "merkle_root", "key_id", "signature", "disputed", "sealed_records", "sealing")
    class SealingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    FROM_CURSOR_FIELD_NUMBER: _ClassVar[int]
    TO_CURSOR_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MERKLE_ROOT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DISPUTED_FIELD_NUMBER: _ClassVar[int]
    SEALED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    SEALING_FIELD_NUMBER: _ClassVar[int]
    index: int
    from_cursor: str
    to_cursor: str
    records: _containers.RepeatedScalarFieldContainer[bytes]
    merkle_root: bytes
    key_id: str
    signature: bytes
    disputed: _containers.RepeatedScalarFieldContainer[int]
    sealed_records: bytes
    sealing: _containers.ScalarMap[str, str]
    def __init__(self, index: _Optional[int] = ..., from_cursor: _Optional[str] = ..., to_cursor: _Optional[str] = ..., records: _Optional[_Iterable[bytes]] = ..., merkle_root: _Optional[bytes] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., disputed: _Optional[_Iterable[int]] = ..., sealed_records: _Optional[bytes] = ..., sealing: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Manifest(_message.Message):
    __slots__ = ("from_cursor", "to_cursor", "record_count", "merkle_root", "key_id", "signature", "batch_count", "until_day", "version", "signed_at")
    FROM_CURSOR_FIELD_NUMBER: _ClassVar[int]
    TO_CURSOR_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    MERKLE_ROOT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    BATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNTIL_DAY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    from_cursor: str
    to_cursor: str
    record_count: int
    merkle_root: bytes
    key_id: str
    signature: bytes
    batch_count: int
    until_day: str
    version: int
    signed_at: str
    def __init__(self, from_cursor: _Optional[str] = ..., to_cursor: _Optional[str] = ..., record_count: _Optional[int] = ..., merkle_root: _Optional[bytes] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., batch_count: _Optional[int] = ..., until_day: _Optional[str] = ..., version: _Optional[int] = ..., signed_at: _Optional[str] = ...) -> None: ...

class PullItem(_message.Message):
    __slots__ = ("header", "batch", "manifest")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    header: PullHeader
    batch: PullBatch
    manifest: Manifest
    def __init__(self, header: _Optional[_Union[PullHeader, _Mapping]] = ..., batch: _Optional[_Union[PullBatch, _Mapping]] = ..., manifest: _Optional[_Union[Manifest, _Mapping]] = ...) -> None: ...
