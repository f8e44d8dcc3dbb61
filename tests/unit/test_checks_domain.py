"""The household check's rules without I/O: what each answer does to its target's state."""

from __future__ import annotations

import datetime as dt

from catalog.checks import Member, TargetState, file_check, overdue, receive, with_answer

NOW = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
WANG = "360426199101010071"


def check():
    return file_check("HC-1", "11150100011627354Q", [Member(WANG, "王芳")], "低保核对", "SQ-1",
                      [("bank", "银行"), ("tax", "税务")], NOW + dt.timedelta(hours=1), NOW, frozenset({"bank", "tax"}))


def answer(current, name, **kwargs):
    fields = dict(valid=True, refused=False, reason="", findings=({"id_number": WANG, "items": {"x": 1}},),
                  at=NOW + dt.timedelta(minutes=1), kid="k", signature="s")
    fields.update(kwargs)
    return receive(current, name, **fields)


def test_an_answer_counts_once_and_findings_name_only_members():
    first = answer(check(), "bank", findings=({"id_number": WANG, "items": {"x": 1}},
                                              {"id_number": "110105194912310021", "items": {"y": 2}}))
    assert first.state is TargetState.ANSWERED and first.findings == ({"id_number": WANG, "items": {"x": 1}},)
    answered = with_answer(check(), first)
    assert answer(answered, "bank") is None  # a duplicate changes nothing
    assert answer(answered, "nobody") is None


def test_an_invalid_answer_does_not_block_the_real_one_and_a_refusal_keeps_its_reason():
    invalid = answer(check(), "tax", valid=False, reason="bad signature")
    assert invalid.state is TargetState.INVALID
    marked = with_answer(check(), invalid)
    assert answer(marked, "tax", valid=False) is None
    refused = answer(marked, "tax", refused=True, reason="未获授权")
    assert (refused.state, refused.reason, refused.findings) == (TargetState.REFUSED, "未获授权", ())


def test_at_the_deadline_pending_targets_are_late_and_late_answers_do_not_count():
    after = NOW + dt.timedelta(hours=2)
    assert [t.state for t in overdue(check(), after)] == [TargetState.LATE, TargetState.LATE]
    assert overdue(check(), NOW) == []
    late = answer(check(), "bank", at=after)
    assert late.state is TargetState.LATE
    done = with_answer(with_answer(check(), late), answer(check(), "tax"))
    assert done.complete
