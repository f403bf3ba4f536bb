# ruff: noqa: RUF001  (full-width digits are test inputs)
from __future__ import annotations

import pytest

from guardrails.checksums import iban_valid, luhn_valid, my_number_check_digit, my_number_valid


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("4111111111111111", True), ("4111111111111112", False), ("378282246310005", True),
     ("79927398713", True), ("79927398710", False), ("41111111111111x1", False)],
)  # fmt: skip
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("first_eleven", "check"),
    # By hand: weights 2..7 then 2..6 from the right; 1s sum to 47 (47 % 11 = 3 -> 8),
    # 9s to 423 (423 % 11 = 5 -> 6).
    [("12345678901", 8), ("00000000000", 0), ("11111111111", 8), ("99999999999", 6)],
)
def test_my_number_check_digit(first_eleven: str, check: int) -> None:
    assert my_number_check_digit(first_eleven) == check


@pytest.mark.parametrize(
    ("number", "valid"),
    [("123456789018", True), ("123456789012", False), ("12345678901", False),
     ("１２３４５６７８９０１８", False)],
)  # fmt: skip
def test_my_number_valid(number: str, valid: bool) -> None:
    assert my_number_valid(number) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [("GB82WEST12345698765432", True), ("GB82 WEST 1234 5698 7654 32", True),
     ("DE89370400440532013000", True), ("GB82WEST12345698765433", False), ("GB82", False)],
)  # fmt: skip
def test_iban(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid
