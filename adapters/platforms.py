"""Platforms (平台) the node delivers to, and which codec each one speaks.

Which platform gets which format is configuration, not code: a TOML file of ``[[platform]]`` tables
(``ops/platforms.sample.toml``). Each platform receives for one department (its 统一社会信用代码), whose
grants decide what the platform may see, on its own queue (``exnode.<node>.out.<platform>``, DESIGN.md §7).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from adapters.codecs import department, ministry, regional, relay
from adapters.codecs.envelope import Envelope
from adapters.errors import AdapterError
from catalog.codes import credit_code_problem

CODECS: dict[str, ModuleType] = {"ministry": ministry, "regional": regional, "department": department,
                                 "node": relay}
"""Platform kind → codec module (``encode``, ``decode``, ``CONTENT_TYPE``). ``node``: the platform is another
tier's exnode node — the upper tier (``upper_node`` its id), or a lower tier the data returns to (回流,
``lower_node``); its queue is shovelled to that node's inbound queue."""
KINDS = tuple(CODECS)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
"""Platform names end up in queue names, so no dots (they separate the parts of a queue name)."""
_KEYS = ("name", "kind", "consumer_code", "queue", "upper_node", "lower_node")
_NODE_KEYS = ("upper_node", "lower_node")
_MAX_QUEUE_BYTES = 255  # AMQP 0-9-1 short string


class Codec(Protocol):
    CONTENT_TYPE: str

    def encode(self, envelope: Envelope, *, checked: bool = False) -> bytes: ...

    def decode(self, data: bytes, *, max_bytes: int = ...) -> Envelope: ...


class PlatformConfigError(AdapterError, ValueError):
    """A bad platforms file; the message names the file and the key (``platforms.toml: platform[2].kind: …``)."""


@dataclass(frozen=True)
class Platform:
    """平台: an external system that receives envelopes from this node in the format of its ``kind``."""

    name: str
    kind: str
    """ministry (XML), regional (JSON) or department (protobuf)."""
    consumer_code: str
    """统一社会信用代码 of the department the platform receives for: its grants apply to what is sent."""
    queue: str
    upper_node: str = ""
    """For kind ``node``: the upper tier's node id (its inbound queue is ``exnode.<upper_node>.in``)."""
    lower_node: str = ""
    """For kind ``node`` instead: a lower tier's node id that data returns to (回流, downward)."""

    @property
    def peer_node(self) -> str:
        """The other node of a ``node`` platform, upper or lower."""
        return self.upper_node or self.lower_node

    @property
    def codec(self) -> Codec:
        return codec_for(self.kind)


def default_queue(node_id: str, name: str) -> str:
    return f"exnode.{node_id}.out.{name}"


def codec_for(kind: str) -> Codec:
    """The codec module of a platform kind; ValueError naming the known kinds for any other."""
    try:
        return CODECS[kind]  # a module satisfies the Codec protocol
    except (KeyError, TypeError):
        raise ValueError(f"{kind!r} is not a platform kind (known: {', '.join(KINDS)})") from None


def _platform(table: Any, where: str, node_id: str) -> Platform:
    if not isinstance(table, dict):
        raise PlatformConfigError(f"{where}: must be a table ([[platform]])")
    for key in table:
        if key not in _KEYS:
            raise PlatformConfigError(f"{where}.{key}: unknown key (known: {', '.join(_KEYS)})")
    values: dict[str, str] = {}
    for key in _KEYS:
        if key not in table:
            if key == "queue" or key in _NODE_KEYS:
                continue
            raise PlatformConfigError(f"{where}.{key}: is missing")
        value = table[key]
        if not isinstance(value, str) or not value:
            raise PlatformConfigError(f"{where}.{key}: must be a non-empty string, not {value!r}")
        values[key] = value
    if not _NAME.fullmatch(values["name"]):
        raise PlatformConfigError(f"{where}.name: {values['name']!r} is not 1-63 of A-Z a-z 0-9 _ - "
                                  "(starting with a letter or digit)")
    if values["kind"] not in CODECS:
        raise PlatformConfigError(f"{where}.kind: {values['kind']!r} is not a platform kind (known: {', '.join(KINDS)})")
    problem = credit_code_problem(values["consumer_code"])
    if problem:
        raise PlatformConfigError(f"{where}.consumer_code: {values['consumer_code']!r} is not a 统一社会信用代码: "
                                  f"{problem}")
    queue = values.get("queue") or default_queue(node_id, values["name"])
    if len(queue.encode("utf-8")) > _MAX_QUEUE_BYTES:
        raise PlatformConfigError(f"{where}.queue: {queue!r} is longer than {_MAX_QUEUE_BYTES} bytes")
    if queue.startswith("amq."):
        raise PlatformConfigError(f"{where}.queue: {queue!r}: names starting with 'amq.' are reserved by RabbitMQ")
    peers = {key: values[key] for key in _NODE_KEYS if key in values}
    for key, peer in peers.items():
        if values["kind"] != "node":
            raise PlatformConfigError(f"{where}.{key}: only a platform of kind node has an {key.replace('_', ' ')}")
        if not _NAME.fullmatch(peer):
            raise PlatformConfigError(f"{where}.{key}: {peer!r} is not a node id (1-63 of A-Z a-z 0-9 _ -)")
    if values["kind"] == "node" and len(peers) != 1:
        raise PlatformConfigError(f"{where}.upper_node: is missing (a node platform names its upper_node, or the "
                                  "lower_node data returns to, not both)" if not peers else
                                  f"{where}.lower_node: a node platform names its upper_node or a lower_node, "
                                  "not both")
    return Platform(values["name"], values["kind"], values["consumer_code"], queue, peers.get("upper_node", ""),
                    peers.get("lower_node", ""))


def load_platforms(path: Path, node_id: str) -> list[Platform]:
    """Every ``[[platform]]`` of the file, checked; PlatformConfigError naming the file and key otherwise.

    A file without platform tables is a node that delivers to no platform (an empty list).
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlatformConfigError(f"{path}: cannot be read: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PlatformConfigError(f"{path}: not valid TOML: {error}") from None
    for key in raw:
        if key != "platform":
            raise PlatformConfigError(f"{path}: {key}: unknown key (known: platform)")
    tables = raw.get("platform", [])
    if not isinstance(tables, list):
        raise PlatformConfigError(f"{path}: platform: must be an array of tables ([[platform]])")
    platforms: list[Platform] = []
    for index, table in enumerate(tables):
        where = f"{path}: platform[{index}]"
        platform = _platform(table, where, node_id)
        for earlier in platforms:
            if earlier.name == platform.name:
                raise PlatformConfigError(f"{where}.name: {platform.name!r} is already the name of another platform")
            if earlier.queue == platform.queue:
                raise PlatformConfigError(f"{where}.queue: {platform.queue!r} is already the queue of platform "
                                          f"{earlier.name!r}")
        platforms.append(platform)
    return platforms
