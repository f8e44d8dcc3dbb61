"""The CLI's tables line up in a terminal when cells hold Chinese text (two cells per character)."""

from __future__ import annotations

from node.cli.output import cut, display_width, format_table


def test_chinese_characters_take_two_cells():
    assert display_width("低保") == 4
    assert display_width("C(18)") == 5
    assert display_width("城乡最低生活保障对象信息 v1") == 27


def test_columns_line_up_by_display_width_with_chinese_text():
    lines = format_table(("代码 code", "名称 name", "状态"),
                         [("311140001/000001", "城乡最低生活保障对象信息", "PUBLISHED"),
                          ("x", "ab", "DRAFT")])
    assert lines[0].startswith("代码 code")
    # the third column starts at the same terminal cell on every line, header and rule included
    starts = [display_width(line[: line.rindex(word)]) for line, word in
              zip(lines, ("状态", "  ─", "PUBLISHED", "DRAFT"), strict=True)]
    starts[1] += 2
    assert len(set(starts)) == 1, lines


def test_long_cells_are_cut_with_a_marker_and_never_wider_than_the_limit():
    long = "详情" * 1000
    shortened = cut(long, 20)
    assert shortened.endswith("…") and display_width(shortened) <= 20
    assert cut("short", 20) == "short"
    lines = format_table(("detail",), [(long,)], max_cell=30)
    assert display_width(lines[2]) <= 30
    assert format_table(("detail",), [(long,)], max_cell=0)[2] == long


def test_a_cut_never_splits_a_wide_character_past_the_limit():
    for width in range(1, 12):
        assert display_width(cut("民政部社会救助司低保", width)) <= max(width, 1)


def test_right_aligned_numbers_end_in_one_column():
    lines = format_table(("序号", "x"), [(1, "a"), (12345, "b")], align=(">",))
    assert lines[2].index("a") == lines[3].index("b")
    assert lines[2].split()[0] == "1"


def test_a_household_check_lines_up_its_targets_by_display_width(capsys):
    """`exnode check show|watch`: a category of Chinese (住建/房产, 9 cells) and one of 4 cells (银行) start
    the state column at the same cell, as the README's walk-through shows."""
    import json

    from exnode.v1 import checks_pb2

    from node.cli.check_commands import _show

    findings = json.dumps([{"id_number": "360426199101010071", "items": {"房产套数": 1}}]).encode()
    check = checks_pb2.HouseholdCheck(id="HC-1", authorisation="SQ-1", targets=[
        checks_pb2.CheckTargetState(name="bank-icbc", category="银行", state="ANSWERED"),
        checks_pb2.CheckTargetState(name="zjt-fangchan", category="住建/房产", state="PENDING", findings=findings)])
    _show(check, as_json=False)
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines[0] == "  bank-icbc     银行       ANSWERED"
    assert lines[1].startswith("  zjt-fangchan  住建/房产  PENDING   360426…: {")
    assert display_width(lines[0][:lines[0].index("ANSWERED")]) == display_width(lines[1][:lines[1].index("PENDING")])
