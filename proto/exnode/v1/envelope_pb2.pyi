import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlatformOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_OPERATION_UNSPECIFIED: _ClassVar[PlatformOperation]
    PLATFORM_OPERATION_UPSERT: _ClassVar[PlatformOperation]
    PLATFORM_OPERATION_DELETE: _ClassVar[PlatformOperation]
PLATFORM_OPERATION_UNSPECIFIED: PlatformOperation
PLATFORM_OPERATION_UPSERT: PlatformOperation
PLATFORM_OPERATION_DELETE: PlatformOperation

class PlatformRecord(_message.Message):
    __slots__ = ("id", "sequence", "operation", "payload_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    sequence: int
    operation: PlatformOperation
    payload_json: str
    def __init__(self, id: _Optional[str] = ..., sequence: _Optional[int] = ..., operation: _Optional[_Union[PlatformOperation, str]] = ..., payload_json: _Optional[str] = ...) -> None: ...

class PlatformSignature(_message.Message):
    __slots__ = ("tree_size", "root", "kid", "algorithm", "signature")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    root: bytes
    kid: str
    algorithm: str
    signature: bytes
    def __init__(self, tree_size: _Optional[int] = ..., root: _Optional[bytes] = ..., kid: _Optional[str] = ..., algorithm: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PlatformProof(_message.Message):
    __slots__ = ("index", "tree_size", "path")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    path: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ..., path: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PlatformHop(_message.Message):
    __slots__ = ("node_id", "batch_id", "signed", "proof")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    batch_id: str
    signed: PlatformSignature
    proof: PlatformProof
    def __init__(self, node_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., signed: _Optional[_Union[PlatformSignature, _Mapping]] = ..., proof: _Optional[_Union[PlatformProof, _Mapping]] = ...) -> None: ...

class PlatformEnvelope(_message.Message):
    __slots__ = ("version", "batch_id", "node_id", "provider_code", "resource_code", "consumer_code", "created_at", "records", "signed", "proof", "hops", "disputed")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_CODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    DISPUTED_FIELD_NUMBER: _ClassVar[int]
    version: int
    batch_id: str
    node_id: str
    provider_code: str
    resource_code: str
    consumer_code: str
    created_at: _timestamp_pb2.Timestamp
    records: _containers.RepeatedCompositeFieldContainer[PlatformRecord]
    signed: PlatformSignature
    proof: PlatformProof
    hops: _containers.RepeatedCompositeFieldContainer[PlatformHop]
    disputed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[int] = ..., batch_id: _Optional[str] = ..., node_id: _Optional[str] = ..., provider_code: _Optional[str] = ..., resource_code: _Optional[str] = ..., consumer_code: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., records: _Optional[_Iterable[_Union[PlatformRecord, _Mapping]]] = ..., signed: _Optional[_Union[PlatformSignature, _Mapping]] = ..., proof: _Optional[_Union[PlatformProof, _Mapping]] = ..., hops: _Optional[_Iterable[_Union[PlatformHop, _Mapping]]] = ..., disputed: _Optional[_Iterable[str]] = ...) -> None: ...
