from hypothesis import given
from hypothesis import strategies as st

from catalog.codes import (
    CREDIT_CODE_ALPHABET,
    credit_code_check_character,
    credit_code_problem,
    resident_id_check_character,
    resident_id_problem,
    resource_code_problem,
)


def test_standard_credit_code_vectors_are_valid():
    assert credit_code_problem("91110000600037341L") is None
    assert credit_code_problem("91512081MA62K0260E") is None


def test_credit_codes_from_other_registrars_are_not_refused():
    for registrar in "ANY":
        body = registrar + "1110000600037341"
        assert credit_code_problem(body + credit_code_check_character(body)) is None


def test_wrong_credit_check_character_is_named():
    problem = credit_code_problem("91110000600037341M")
    assert problem is not None and "check character" in problem and "'L'" in problem


def test_credit_code_letters_outside_the_alphabet_are_refused():
    for bad in "IOSVZ":
        assert "not allowed" in (credit_code_problem("9111000060003734" + bad + "L") or "")


def test_credit_code_length_is_checked():
    assert "18 characters" in (credit_code_problem("9111000060003734") or "")


@given(st.text(alphabet=CREDIT_CODE_ALPHABET, min_size=16, max_size=16),
       st.sampled_from("123456789ANY"), st.integers(0, 16), st.sampled_from(CREDIT_CODE_ALPHABET))
def test_any_single_character_change_of_a_credit_code_is_detected(body, registrar, position, replacement):
    first17 = registrar + body
    code = first17 + credit_code_check_character(first17)
    assert credit_code_problem(code) is None
    changed = code[:position] + replacement + code[position + 1:]
    if changed != code:
        assert credit_code_problem(changed) is not None


def test_resident_id_vector_and_check():
    assert resident_id_problem("360426199101010071") is None
    assert resident_id_check_character("36042619910101007") == "1"
    assert "check character" in (resident_id_problem("360426199101010072") or "")
    assert resident_id_problem("360426910101007") is None  # old 15-digit numbers have no check


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_resident_id_check_character_always_validates(body):
    assert resident_id_problem(body + resident_id_check_character(body)) is None


def test_resource_codes():
    assert resource_code_problem("112461465423/798456") is None
    assert resource_code_problem("311140001/000001") is None
    for bad in ("", "411140001/000001", "31114/1", "311140001-000001", "311140001/", "3111400a1/000001"):
        assert resource_code_problem(bad) is not None, bad
