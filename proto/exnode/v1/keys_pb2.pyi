from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublicKey(_message.Message):
    __slots__ = ("kid", "algorithm", "public_pem", "created_at", "active")
    KID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_PEM_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    kid: str
    algorithm: str
    public_pem: str
    created_at: str
    active: bool
    def __init__(self, kid: _Optional[str] = ..., algorithm: _Optional[str] = ..., public_pem: _Optional[str] = ..., created_at: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class ListPublicKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPublicKeysResponse(_message.Message):
    __slots__ = ("node_id", "keys")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    keys: _containers.RepeatedCompositeFieldContainer[PublicKey]
    def __init__(self, node_id: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[PublicKey, _Mapping]]] = ...) -> None: ...

class GetTimestampRequest(_message.Message):
    __slots__ = ("kind", "ref", "node_id", "resource_code")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CODE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    ref: str
    node_id: str
    resource_code: str
    def __init__(self, kind: _Optional[str] = ..., ref: _Optional[str] = ..., node_id: _Optional[str] = ..., resource_code: _Optional[str] = ...) -> None: ...

class TimestampEvidence(_message.Message):
    __slots__ = ("kind", "ref", "digest", "index", "size", "proof", "token")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    kind: str
    ref: str
    digest: bytes
    index: int
    size: int
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    token: bytes
    def __init__(self, kind: _Optional[str] = ..., ref: _Optional[str] = ..., digest: _Optional[bytes] = ..., index: _Optional[int] = ..., size: _Optional[int] = ..., proof: _Optional[_Iterable[bytes]] = ..., token: _Optional[bytes] = ...) -> None: ...
