"""Check-digit algorithms that turn digit patterns into confident detections."""

from __future__ import annotations

__all__ = ["iban_valid", "luhn_valid", "my_number_check_digit", "my_number_valid"]


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) over a string of ASCII digits (payment cards)."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def my_number_check_digit(first_eleven: str) -> int:
    """Check digit of a Japanese Individual Number (My Number).

    From the ordinance on the Individual Number (総務省令第85号, 第5条): with the eleven
    digits P_n numbered from the right (n = 1..11) and Q_n = n + 1 for n <= 6, n - 5 for
    n >= 7, the remainder r = sum(P_n * Q_n) mod 11 gives check digit 0 when r <= 1,
    else 11 - r.
    """
    if len(first_eleven) != 11 or not first_eleven.isdigit() or not first_eleven.isascii():
        raise ValueError("expects 11 ASCII digits")
    total = 0
    for n, char in enumerate(reversed(first_eleven), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(char) * weight
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def my_number_valid(digits: str) -> bool:
    if len(digits) != 12 or not digits.isdigit() or not digits.isascii():
        return False
    return my_number_check_digit(digits[:11]) == int(digits[11])


def iban_valid(candidate: str) -> bool:
    """ISO 13616 mod-97 check over an IBAN (spaces ignored)."""
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34 or not iban.isalnum() or not iban.isascii():
        return False
    if not (iban[:2].isalpha() and iban[2:4].isdigit()):
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1
