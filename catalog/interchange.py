"""The interchange form of a resource: a plain dict (JSON objects, and the XML codec's intermediate).

Parsing collects every problem of an entry with its field path, so an import can report all of them.
"""

from __future__ import annotations

import datetime as dt
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


def metadata_to_dict(meta: ResourceMetadata) -> dict[str, Any]:
    """The dict form; ``metadata_from_dict(metadata_to_dict(m)) == m`` for every valid m."""
    out: dict[str, Any] = {
        "code": meta.code,
        "name": meta.name,
        "classification": meta.classification.value,
        "provider_name": meta.provider_name,
        "provider_code": meta.provider_code,
        "summary": meta.summary,
        "format_class": meta.format_class.value,
        "format_type": meta.format_type,
        "items": [
            {"name": i.name, "data_type": i.data_type.value, "length": i.length, "required": i.required}
            | ({"description": i.description} if i.description else {})
            | ({"key": True} if i.key else {})
            for i in meta.items
        ],
        "share_type": meta.share_type.value,
        "open_type": meta.open_type.value,
        "update_cycle": meta.update_cycle.value,
    }
    optional = {
        "format_description": meta.format_description,
        "share_condition": meta.share_condition,
        "share_method_class": meta.share_method_class.value if meta.share_method_class else "",
        "share_method_type": meta.share_method_type.value if meta.share_method_type else "",
        "open_condition": meta.open_condition,
        "publish_date": meta.publish_date.isoformat() if meta.publish_date else "",
        "related_codes": list(meta.related_codes),
        "keywords": list(meta.keywords),
    }
    out.update({k: v for k, v in optional.items() if v})
    return out


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
