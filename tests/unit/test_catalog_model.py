"""The catalog's rules, as plain domain code (no I/O)."""

import dataclasses
import datetime as dt

import pytest

from catalog import model
from catalog.errors import IllegalTransition, InvalidField
from catalog.interchange import metadata_from_dict, metadata_to_dict
from catalog.model import (
    Classification,
    FormatClass,
    Item,
    ItemDataType,
    OpenType,
    ResourceStatus,
    ShareType,
    VersionState,
)
from tests.conftest import FixedClock, resource


def fields_of(error: InvalidField) -> set[str]:
    return {p.field for p in error.problems}


def test_a_valid_resource_has_no_problems():
    assert model.metadata_problems(resource()) == []


def test_bad_provider_check_character_names_the_field():
    problems = model.metadata_problems(resource(provider_code="11100000MB01284765"))
    assert [p.field for p in problems] == ["provider_code"]
    assert "check character" in problems[0].reason


def test_code_must_match_its_classification():
    problems = model.metadata_problems(resource(classification=Classification.BASIC))
    assert [p.field for p in problems] == ["code"]
    assert "starts with 1" in problems[0].reason


def test_duplicate_item_names_are_refused():
    items = (Item("姓名", ItemDataType.STRING, 50), Item("姓名", ItemDataType.STRING, 20))
    problems = model.metadata_problems(resource(items=items))
    assert problems[0].field == "items[1].name" and "duplicate" in problems[0].reason


@pytest.mark.parametrize(("data_type", "length"), [
    (ItemDataType.STRING, 0), (ItemDataType.STRING, 9000), (ItemDataType.DATE, 8),
    (ItemDataType.LOGICAL, 1), (ItemDataType.NUMERIC, 99), (ItemDataType.INTEGER, -1),
])
def test_impossible_item_lengths_are_refused(data_type, length):
    problems = model.metadata_problems(resource(items=(Item("字段", data_type, length),)))
    assert [p.field for p in problems] == ["items[0].length"]


def test_a_resource_needs_items():
    assert "items" in {p.field for p in model.metadata_problems(resource(items=()))}


def test_conditional_sharing_needs_its_condition():
    problems = model.metadata_problems(resource(share_condition=""))
    assert [p.field for p in problems] == ["share_condition"]


def test_not_shared_needs_a_basis_and_must_not_be_open():
    problems = model.metadata_problems(resource(share_type=ShareType.NOT_SHARED, share_condition="",
                                                open_type=OpenType.UNCONDITIONAL))
    assert {p.field for p in problems} == {"share_condition", "open_type"}


def test_shared_resources_need_a_share_method():
    problems = model.metadata_problems(resource(share_method_class=None, share_method_type=None))
    assert {p.field for p in problems} == {"share_method_class", "share_method_type"}


def test_format_type_must_belong_to_its_class():
    problems = model.metadata_problems(resource(format_class=FormatClass.SPREADSHEET, format_type="KingbaseES"))
    assert [p.field for p in problems] == ["format_type"]
    other = model.metadata_problems(resource(format_class=FormatClass.OTHER, format_type="", format_description=""))
    assert [p.field for p in other] == ["format_description"]


def test_related_codes_cannot_point_to_itself_or_repeat():
    meta = resource(related_codes=("311140001/000101", "311140001/000001", "311140001/000001", "bad"))
    assert {p.field for p in model.metadata_problems(meta)} == {
        "related_codes[0]", "related_codes[2]", "related_codes[3]"}


def test_unknown_enumeration_values_name_the_field_and_the_allowed_values():
    with pytest.raises(InvalidField) as caught:
        ShareType.parse("SOMETIMES", "share_type")
    assert "share_type" in str(caught.value) and "UNCONDITIONAL" in str(caught.value)


def test_enumerations_accept_the_standards_chinese_labels_and_numbers():
    assert ShareType.parse("有条件共享", "share_type") is ShareType.CONDITIONAL
    assert ShareType.parse("3", "share_type") is ShareType.NOT_SHARED
    assert model.UpdateCycle.parse("每季度", "update_cycle") is model.UpdateCycle.QUARTERLY


def test_dict_form_round_trips():
    meta = resource(related_codes=("311140001/000001",), keywords=("低保", "救助"))
    assert metadata_from_dict(metadata_to_dict(meta)) == meta


def test_dict_parsing_reports_every_problem_with_its_path():
    data = metadata_to_dict(resource())
    data["share_type"] = "MAYBE"
    data["items"][1]["length"] = "fifty"
    data["colour"] = "blue"
    with pytest.raises(InvalidField) as caught:
        metadata_from_dict(data)
    assert fields_of(caught.value) == {"share_type", "items[1].length", "colour"}


class TestLifecycle:
    def test_new_resources_are_drafts_at_version_one(self):
        created = model.create(resource(), FixedClock()())
        assert (created.status, created.latest.version, created.latest.state) == (
            ResourceStatus.DRAFT, 1, VersionState.DRAFT)

    def test_publishing_sets_the_publish_date_and_freezes_the_version(self):
        clock = FixedClock()
        published = model.publish(model.create(resource(), clock()), clock())
        assert published.status is ResourceStatus.PUBLISHED
        assert published.latest.metadata.publish_date == clock().date()
        assert published.published_version == 1

    def test_editing_a_published_resource_opens_a_new_draft_version(self):
        clock = FixedClock()
        published = model.publish(model.create(resource(), clock()), clock())
        edited = model.edit(published, resource(name="城乡低保对象信息（2026版）"), clock())
        assert edited.latest.version == 2 and edited.latest.state is VersionState.DRAFT
        assert edited.published_version == 1 and edited.status is ResourceStatus.PUBLISHED

    def test_editing_a_draft_changes_it_in_place(self):
        clock = FixedClock()
        edited = model.edit(model.create(resource(), clock()), resource(name="新名称"), clock())
        assert edited.latest.version == 1 and edited.latest.metadata.name == "新名称"

    def test_publishing_a_retired_resource_is_refused_naming_the_state(self):
        clock = FixedClock()
        retired = model.retire(model.publish(model.create(resource(), clock()), clock()), clock())
        with pytest.raises(IllegalTransition) as caught:
            model.publish(retired, clock())
        assert "RETIRED" in str(caught.value)
        with pytest.raises(IllegalTransition):
            model.edit(retired, resource(), clock())

    def test_only_published_resources_can_be_retired(self):
        with pytest.raises(IllegalTransition, match="DRAFT"):
            model.retire(model.create(resource(), FixedClock()()), FixedClock()())

    def test_publishing_twice_is_refused(self):
        clock = FixedClock()
        published = model.publish(model.create(resource(), clock()), clock())
        with pytest.raises(IllegalTransition, match="already published"):
            model.publish(published, clock())

    def test_code_and_provider_cannot_change(self):
        clock = FixedClock()
        draft = model.create(resource(), clock())
        with pytest.raises(InvalidField, match="code"):
            model.edit(draft, resource(code="311140001/000102"), clock())
        with pytest.raises(InvalidField, match="provider_code"):
            model.edit(draft, dataclasses.replace(resource(), provider_code="91110000600037341L"), clock())


def test_the_trusted_reader_rebuilds_exactly_what_was_stored():
    import json
    from pathlib import Path

    from catalog.interchange import metadata_from_dict, metadata_from_trusted_dict, metadata_to_dict

    sample = Path(__file__).parents[2] / "node" / "sample" / "catalog.json"
    for raw in json.loads(sample.read_text("utf-8"))["resources"]:
        meta = metadata_from_dict(raw)
        assert metadata_from_trusted_dict(metadata_to_dict(meta)) == meta


def test_the_stored_document_is_the_json_of_the_dict_form():
    """``metadata_document`` splices cached item JSON into the encoded rest: it must equal the plain
    encoding, for texts with quotes, backslashes and the splice's own marker, and for items that
    compare equal but encode differently (1 == True)."""
    import json

    from catalog.interchange import metadata_document

    base = resource()
    tricky = '"items": [] \\" 引号\u2028'
    items = (*base.items, dataclasses.replace(base.items[0], name=tricky, description=tricky))
    variants = [
        base,
        dataclasses.replace(base, items=items, summary=tricky, keywords=(tricky, "k")),
        dataclasses.replace(base, name=tricky, related_codes=("1/000001",), format_description=tricky),
        dataclasses.replace(base, items=(dataclasses.replace(base.items[0], length=True),)),
        dataclasses.replace(base, items=(dataclasses.replace(base.items[0], length=1),)),
        dataclasses.replace(base, items=()),
        dataclasses.replace(base, publish_date=dt.date(2026, 3, 1), open_condition=tricky, share_condition=tricky),
        dataclasses.replace(base, keywords=["list", "not a tuple"], publish_date=dt.datetime(2026, 3, 1, 8, 0)),
    ]
    from node.bench.catalog import Generator

    generator, codes = Generator(), []
    for _ in range(500):  # every share, open and format variant of the sample catalog's topics
        variants.append(generator.one(codes))
        codes.append(variants[-1].code)
    for meta in variants * 2:  # the second time from the cache
        assert metadata_document(meta) == json.dumps(metadata_to_dict(meta), ensure_ascii=False, sort_keys=True)
