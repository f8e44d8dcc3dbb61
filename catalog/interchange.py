"""The interchange form of a resource: a plain dict (JSON objects, and the XML codec's intermediate).

Parsing collects every problem of an entry with its field path, so an import can report all of them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from catalog.errors import FieldProblem, InvalidField
from catalog.model import (
    Classification,
    FormatClass,
    Item,
    ItemDataType,
    LabelledEnum,
    OpenType,
    ResourceMetadata,
    ShareMethodClass,
    ShareMethodType,
    ShareType,
    UpdateCycle,
    metadata_problems,
)

FIELDS = (
    "code", "name", "classification", "provider_name", "provider_code", "summary", "format_class",
    "format_type", "format_description", "items", "share_type", "share_condition", "share_method_class",
    "share_method_type", "open_type", "open_condition", "update_cycle", "publish_date", "related_codes",
    "keywords",
)
ITEM_FIELDS = ("name", "data_type", "length", "required", "description", "key")


def parse_date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidField.one(field, f"{value!r} is not a date in CCYY-MM-DD form") from None


def metadata_from_dict(data: Any) -> ResourceMetadata:
    """Build metadata from its dict form, or raise InvalidField listing every problem found."""
    if not isinstance(data, dict):
        raise InvalidField.one("", f"a resource must be an object, not {type(data).__name__}")
    problems: list[FieldProblem] = [
        FieldProblem(key, "unknown field") for key in data if key not in FIELDS
    ]

    def text(key: str) -> str:
        value = data.get(key, "")
        if value is None:
            return ""
        if not isinstance(value, str):
            problems.append(FieldProblem(key, f"must be text, not {type(value).__name__}"))
            return ""
        return value

    def enum(key: str, kind: type[LabelledEnum], optional: bool = False) -> Any:
        value = text(key)
        if not value:
            if not optional:
                problems.append(FieldProblem(key, "is required"))
            return None
        try:
            return kind.parse(value, key)
        except InvalidField as error:
            problems.extend(error.problems)
            return None

    def text_list(key: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(FieldProblem(key, "must be a list of text"))
            return ()
        return tuple(value)

    items: list[Item] = []
    raw_items = data.get("items") or []
    if not isinstance(raw_items, list):
        problems.append(FieldProblem("items", "must be a list"))
        raw_items = []
    for index, raw in enumerate(raw_items):
        where = f"items[{index}]"
        if not isinstance(raw, dict):
            problems.append(FieldProblem(where, "must be an object"))
            continue
        problems.extend(FieldProblem(f"{where}.{k}", "unknown field") for k in raw if k not in ITEM_FIELDS)
        name = raw.get("name", "")
        data_type = None
        try:
            data_type = ItemDataType.parse(str(raw.get("data_type", "")), f"{where}.data_type")
        except InvalidField as error:
            problems.extend(error.problems)
        length = raw.get("length", 0)
        if isinstance(length, bool) or not isinstance(length, int):
            problems.append(FieldProblem(f"{where}.length", f"must be a whole number, not {length!r}"))
            length = 0
        required = raw.get("required", False)
        if not isinstance(required, bool):
            problems.append(FieldProblem(f"{where}.required", "must be true or false"))
            required = False
        key = raw.get("key", False)
        if not isinstance(key, bool):
            problems.append(FieldProblem(f"{where}.key", "must be true or false"))
            key = False
        if not isinstance(name, str):
            problems.append(FieldProblem(f"{where}.name", "must be text"))
            name = ""
        if data_type is not None:
            items.append(Item(name, data_type, length, required, str(raw.get("description", "") or ""), key))

    publish_date = None
    if text("publish_date"):
        try:
            publish_date = parse_date(text("publish_date"), "publish_date")
        except InvalidField as error:
            problems.extend(error.problems)

    fields = dict(
        code=text("code"), name=text("name"), classification=enum("classification", Classification),
        provider_name=text("provider_name"), provider_code=text("provider_code"), summary=text("summary"),
        format_class=enum("format_class", FormatClass), format_type=text("format_type"),
        format_description=text("format_description"), items=tuple(items),
        share_type=enum("share_type", ShareType), share_condition=text("share_condition"),
        share_method_class=enum("share_method_class", ShareMethodClass, optional=True),
        share_method_type=enum("share_method_type", ShareMethodType, optional=True),
        open_type=enum("open_type", OpenType), open_condition=text("open_condition"),
        update_cycle=enum("update_cycle", UpdateCycle), publish_date=publish_date,
        related_codes=text_list("related_codes"), keywords=text_list("keywords"),
    )
    required_enums = ("classification", "format_class", "share_type", "open_type", "update_cycle")
    if problems or any(fields[k] is None for k in required_enums):
        raise InvalidField(problems)
    meta = ResourceMetadata(**fields)
    problems.extend(metadata_problems(meta))
    if problems:
        raise InvalidField(problems)
    return meta


def _item_to_dict(item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {"name": item.name, "data_type": item.data_type._value_, "length": item.length,
                           "required": item.required}
    if item.description:
        out["description"] = item.description
    if item.key:
        out["key"] = True
    return out


def metadata_to_dict(meta: ResourceMetadata) -> dict[str, Any]:
    """The dict form; ``metadata_from_dict(metadata_to_dict(m)) == m`` for every valid m. Enum values
    as ``_value_`` (the attribute itself: ``.value`` goes through enum's descriptor, a tenth of an
    import's time spent on its 16 look-ups per resource)."""
    out: dict[str, Any] = {
        "code": meta.code,
        "name": meta.name,
        "classification": meta.classification._value_,
        "provider_name": meta.provider_name,
        "provider_code": meta.provider_code,
        "summary": meta.summary,
        "format_class": meta.format_class._value_,
        "format_type": meta.format_type,
        "items": [_item_to_dict(i) for i in meta.items],
        "share_type": meta.share_type._value_,
        "open_type": meta.open_type._value_,
        "update_cycle": meta.update_cycle._value_,
    }
    optional = {
        "format_description": meta.format_description,
        "share_condition": meta.share_condition,
        "share_method_class": meta.share_method_class._value_ if meta.share_method_class else "",
        "share_method_type": meta.share_method_type._value_ if meta.share_method_type else "",
        "open_condition": meta.open_condition,
        "publish_date": meta.publish_date.isoformat() if meta.publish_date else "",
        "related_codes": list(meta.related_codes),
        "keywords": list(meta.keywords),
    }
    out.update({k: v for k, v in optional.items() if v})
    return out


_DOCUMENT_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
_ITEM_JSON: dict[Item, str] = {}
"""The JSON of items already encoded (an import's items repeat: 姓名, 公民身份号码… in thousands of resources)."""
_ITEM_JSON_LIMIT = 65_536


def _item_json(item: Item) -> str:
    if type(item.length) is not int or type(item.required) is not bool or type(item.key) is not bool:
        return _DOCUMENT_JSON(_item_to_dict(item))  # 1 == True: equal items that encode differently
    encoded = _ITEM_JSON.get(item)
    if encoded is None:
        encoded = _DOCUMENT_JSON(_item_to_dict(item))
        if len(_ITEM_JSON) >= _ITEM_JSON_LIMIT:
            _ITEM_JSON.clear()
        _ITEM_JSON[item] = encoded
    return encoded


def metadata_document(meta: ResourceMetadata) -> str:
    """The stored document of a version: exactly ``json.dumps(metadata_to_dict(meta), ensure_ascii=False,
    sort_keys=True)``, written directly. Why: building that dict and encoding it with sorted keys was the
    largest single cost of an import's rows (twice this); each distinct item is encoded once. The keys
    below are in sorted order; strings go through the encoder's own escaping; enumeration values are
    the code's ASCII constants. Anything of an unexpected type takes the plain encoder."""
    if not _plain(meta):
        return _DOCUMENT_JSON(metadata_to_dict(meta))
    parts = ['{"classification": "', meta.classification._value_, '", "code": ', _string(meta.code),
             ', "format_class": "', meta.format_class._value_, '"']
    if meta.format_description:
        parts += ', "format_description": ', _string(meta.format_description)
    parts += ', "format_type": ', _string(meta.format_type), ', "items": [', ", ".join(map(_item_json, meta.items)), "]"
    if meta.keywords:
        parts += ', "keywords": [', ", ".join(map(_string, meta.keywords)), "]"
    parts += ', "name": ', _string(meta.name)
    if meta.open_condition:
        parts += ', "open_condition": ', _string(meta.open_condition)
    parts += (', "open_type": "', meta.open_type._value_, '", "provider_code": ', _string(meta.provider_code),
              ', "provider_name": ', _string(meta.provider_name))
    if meta.publish_date:
        parts += ', "publish_date": "', meta.publish_date.isoformat(), '"'
    if meta.related_codes:
        parts += ', "related_codes": [', ", ".join(map(_string, meta.related_codes)), "]"
    if meta.share_condition:
        parts += ', "share_condition": ', _string(meta.share_condition)
    if meta.share_method_class:
        parts += ', "share_method_class": "', meta.share_method_class._value_, '"'
    if meta.share_method_type:
        parts += ', "share_method_type": "', meta.share_method_type._value_, '"'
    parts += (', "share_type": "', meta.share_type._value_, '", "summary": ', _string(meta.summary),
              ', "update_cycle": "', meta.update_cycle._value_, '"}')
    return "".join(parts)


_string = json.encoder.encode_basestring
"""The escaping ``json.dumps(..., ensure_ascii=False)`` applies to every string (the same C function)."""


def _plain(meta: ResourceMetadata) -> bool:
    """Every field of the type the direct writer assumes (what parsing makes; a caller's odd value
    still gets exactly the plain encoder's output)."""
    return (type(meta.code) is str and type(meta.name) is str and type(meta.summary) is str
            and type(meta.provider_code) is str and type(meta.provider_name) is str
            and type(meta.format_type) is str and type(meta.format_description) is str
            and type(meta.share_condition) is str and type(meta.open_condition) is str
            and type(meta.items) is tuple and type(meta.keywords) is tuple and type(meta.related_codes) is tuple
            and (meta.publish_date is None or type(meta.publish_date) is dt.date)
            and all(type(k) is str for k in meta.keywords) and all(type(c) is str for c in meta.related_codes))


def enum_member(kind: type[LabelledEnum], value: str) -> Any:
    """The member whose value is ``value``: a dict look-up (``kind(value)`` costs ~5 µs, and a page of
    50 resources looks up some 800 members)."""
    member = kind._value2member_map_.get(value)
    return member if member is not None else kind(value)


def metadata_from_trusted_dict(data: dict[str, Any]) -> ResourceMetadata:
    """The dict form of metadata that was validated when it was stored: rebuilt without re-checking.

    Reading is the catalog's hot path (every get and every page of a search); the full check of
    ``metadata_from_dict`` costs more than the query itself and cannot fail on what the node wrote.
    """
    def enum(kind: type[LabelledEnum], key: str) -> Any:
        value = data.get(key)
        return enum_member(kind, value) if value else None

    publish_date = data.get("publish_date")
    return ResourceMetadata(
        code=data["code"], name=data["name"], classification=enum_member(Classification, data["classification"]),
        provider_name=data["provider_name"], provider_code=data["provider_code"], summary=data["summary"],
        format_class=enum_member(FormatClass, data["format_class"]), format_type=data["format_type"],
        format_description=data.get("format_description", ""),
        items=tuple(Item(i["name"], enum_member(ItemDataType, i["data_type"]), i["length"], i["required"], i.get("description", ""),
                         i.get("key", False)) for i in data["items"]),
        share_type=enum_member(ShareType, data["share_type"]), share_condition=data.get("share_condition", ""),
        share_method_class=enum(ShareMethodClass, "share_method_class"),
        share_method_type=enum(ShareMethodType, "share_method_type"),
        open_type=enum_member(OpenType, data["open_type"]), open_condition=data.get("open_condition", ""),
        update_cycle=enum_member(UpdateCycle, data["update_cycle"]),
        publish_date=dt.date.fromisoformat(publish_date) if publish_date else None,
        related_codes=tuple(data.get("related_codes", ())), keywords=tuple(data.get("keywords", ())),
    )
