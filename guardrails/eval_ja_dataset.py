"""A generated Japanese PII evaluation set (Faker ja_JP values in our own templates).

Deterministic for a seed. Faker is a dev dependency: imported only here (evaluation).
Names come from Faker's lists, which the cheap tier's gazetteer also contains: its name
recall on this set is optimistic; the NER tier's figure is the fairer one.
"""

from __future__ import annotations

# ruff: noqa: RUF001  (Japanese text uses full-width punctuation and digits on purpose)
import random
import string
from dataclasses import dataclass
from typing import Any

from guardrails.checksums import my_number_check_digit

__all__ = ["Example", "generate"]

_FULL_WIDTH = str.maketrans(string.digits + "-", "０１２３４５６７８９－")


@dataclass(frozen=True)
class Example:
    text: str
    spans: tuple[tuple[str, int, int], ...]  # (entity type, start, end)


_TEMPLATES = [
    "{PERSON}様、ご注文ありがとうございます。お届け先：{JP_POSTAL_CODE} {JP_ADDRESS}",
    "担当の{SURNAME}です。携帯は{PHONE_NUMBER}までご連絡ください。",
    "申請者：{PERSON}　マイナンバー：{JP_MY_NUMBER}",
    "{PERSON}さんのメールアドレスは{EMAIL_ADDRESS}です。",
    "カード番号{CREDIT_CARD}で決済しました。明細をご確認ください。",
    "住所は{JP_ADDRESS}、電話{PHONE_NUMBER}です。",
    "お世話になっております。営業部の{PERSON}と申します。",
    "郵便番号{JP_POSTAL_CODE_BARE}、{JP_ADDRESS}へ書類を送付してください。",
    "緊急連絡先：{PHONE_NUMBER}（{PERSON}）",
    "個人番号{JP_MY_NUMBER}を記入した書類を{PERSON}課長に提出しました。",
    "昨日{PERSON}さんから{EMAIL_ADDRESS}宛に見積書が届きました。",
    "会議は3月15日10時から第2会議室で行います。予算は1200万円です。",
    "請求書番号2024-0315-0001の支払期日は月末です。",
    "在庫数は12345678個、注文番号は987654321012です。",
]


def _phone(rng: random.Random) -> str:
    kind = rng.randrange(6)

    def n(k: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(k))

    if kind == 0:
        return f"0{rng.choice('789')}0-{n(4)}-{n(4)}"
    if kind == 1:
        return f"0{rng.choice('789')}0{n(8)}"
    if kind == 2:
        return f"0{rng.choice('36')}-{n(4)}-{n(4)}"
    if kind == 3:
        return f"0120-{n(3)}-{n(3)}"
    if kind == 4:
        return f"+81-{rng.choice('789')}0-{n(4)}-{n(4)}"
    return f"0{rng.choice('789')}0-{n(4)}-{n(4)}".translate(_FULL_WIDTH)


def _my_number(rng: random.Random) -> str:
    body = "".join(rng.choice(string.digits) for _ in range(11))
    number = body + str(my_number_check_digit(body))
    if rng.random() < 0.3:
        number = f"{number[:4]}-{number[4:8]}-{number[8:]}"
    return number.translate(_FULL_WIDTH) if rng.random() < 0.2 else number


def generate(count: int = 300, seed: int = 20240501) -> list[Example]:
    from faker import Faker  # dev dependency: evaluation only

    fake: Any = Faker("ja_JP")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    examples: list[Example] = []
    for i in range(count):
        template = _TEMPLATES[i % len(_TEMPLATES)]
        values = {
            "PERSON": fake.name().replace(" ", rng.choice(["", " ", "\u3000"])),
            "SURNAME": fake.last_name(),
            "PHONE_NUMBER": _phone(rng),
            "JP_MY_NUMBER": _my_number(rng),
            "EMAIL_ADDRESS": fake.email(),
            "CREDIT_CARD": fake.credit_card_number(card_type=rng.choice(["visa16", "mastercard"])),
            "JP_POSTAL_CODE": "〒" + fake.zipcode(),
            "JP_POSTAL_CODE_BARE": fake.zipcode(),
            "JP_ADDRESS": fake.address().split(" ")[0],
        }
        text, spans = "", []
        rest = template
        while "{" in rest:
            before, _, tail = rest.partition("{")
            key, _, rest = tail.partition("}")
            text += before
            entity = {"SURNAME": "PERSON", "JP_POSTAL_CODE_BARE": "JP_POSTAL_CODE"}.get(key, key)
            spans.append((entity, len(text), len(text) + len(values[key])))
            text += values[key]
        text += rest
        examples.append(Example(text, tuple(spans)))
    return examples
