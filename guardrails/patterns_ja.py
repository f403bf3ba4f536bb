"""Recognizers for Japanese personal data: phones, My Number, postal codes, addresses.

They run on NFKC-normalised text (see `guardrails.textmap`), so full-width digits and
dashes (U+FF10.., U+2212) arrive as ASCII. Japanese has no spaces between words:
boundaries are ASCII digit look-arounds.
"""

from __future__ import annotations

import re

from guardrails.checksums import my_number_valid
from guardrails.recognizer import CheckedRecognizer

__all__ = ["PREFECTURES", "ja_recognizers"]

PREFECTURES = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
]

_PREF = "(?:" + "|".join(PREFECTURES) + ")"
_B = r"(?<![0-9+-])"
_E = r"(?![0-9])"
_SEP = r"[- ]?"


def _digits(value: str) -> str:
    return re.sub(r"[^0-9]", "", value)


def _jp_phone_valid(value: str) -> bool:
    digits = _digits(value)
    if digits.startswith("81"):
        digits = "0" + digits[2:].lstrip("0")
    if digits[:3] in {"070", "080", "090", "050"} or digits.startswith("0800"):
        return len(digits) == 11
    return len(digits) == 10


# Mobile, IP phone (050), toll-free (0120 / 0800), landline (area code 2-5 digits, 10
# digits in all: separators required, a bare 10-digit run is too often something else).
_MOBILE = _B + r"0[5789]0" + _SEP + r"[0-9]{4}" + _SEP + r"[0-9]{4}" + _E
_TOLL_FREE = (
    _B
    + r"(?:0120"
    + _SEP
    + r"[0-9]{3}"
    + _SEP
    + r"[0-9]{3}|0800"
    + _SEP
    + (r"[0-9]{3}" + _SEP + r"[0-9]{4})" + _E)
)
_LANDLINE = _B + r"0[1-9][0-9]{0,3}(?:-|\()[0-9]{1,4}(?:-|\))[0-9]{4}" + _E
_PLUS81 = r"(?<![0-9+])\+81[- ]?(?:\(0\))?[- ]?[1-9][0-9]{0,3}[- ]?[0-9]{1,4}[- ]?[0-9]{4}" + _E
# 12 digits, optionally grouped 4-4-4; the check digit decides.
_MY_NUMBER = _B + r"[0-9]{4}[- ]?[0-9]{4}[- ]?[0-9]{4}" + r"(?![0-9]|-[0-9])"
_POSTAL_MARK = r"〒 ?[0-9]{3}-?[0-9]{4}" + _E
_POSTAL_CONTEXT = (
    r"(?=[0-9])(?<=(?:郵便番号|住所|所在地|送付先|届け先|postal code|zip)[^0-9\n]{0,4})"
    r"[0-9]{3}-[0-9]{4}" + _E
)
_POSTAL_BEFORE_PREF = _B + r"[0-9]{3}-[0-9]{4}" + _E + r"(?=[ 　]{0,2}" + _PREF + ")"
# Prefecture + municipality (+ ward / town) + block number: 東京都千代田区丸の内1-2-3.
_KANJI_PLACE = r"[一-龥ぁ-んァ-ヶヵヶー々]"
_BLOCK = (
    r"(?:[0-9]+(?:丁目|番地?|号|-)){0,3}[0-9]+(?:番地?|号)?"
    r"(?:[ 　]?"
    + _KANJI_PLACE
    + r"{0,12}(?:ビル|マンション|ハイツ|タワー|荘)?[ 　]?[0-9]{1,4}(?:階|号室|F))?"
)
_ADDRESS_FULL = (
    _PREF + _KANJI_PLACE + r"{1,8}?[市区町村郡]" + _KANJI_PLACE + r"{0,12}?" + _BLOCK + _E
)
_ADDRESS_CITY = (
    r"(?<!"
    + _KANJI_PLACE
    + r")"
    + _KANJI_PLACE
    + r"{1,6}?(?:市|区)"
    + _KANJI_PLACE
    + r"{1,10}?"
    + r"[0-9]+(?:丁目|-)[0-9]+(?:番地?|-)[0-9]+号?"
    + _E
)


def ja_recognizers() -> list[CheckedRecognizer]:
    return [
        CheckedRecognizer(
            "PHONE_NUMBER",
            [
                ("jp_mobile", _MOBILE, 0.8),
                ("jp_toll_free", _TOLL_FREE, 0.8),
                ("jp_landline", _LANDLINE, 0.7),
                ("jp_plus81", _PLUS81, 0.8),
            ],
            _jp_phone_valid,
            name="jp_phone_recognizer",
        ),
        CheckedRecognizer(
            "JP_MY_NUMBER",
            [("my_number", _MY_NUMBER, 0.3)],
            lambda v: my_number_valid(_digits(v)),
            confirms=True,
        ),
        CheckedRecognizer(
            "JP_POSTAL_CODE",
            [
                ("postal_mark", _POSTAL_MARK, 0.9),
                ("postal_context", _POSTAL_CONTEXT, 0.7),
                ("postal_before_prefecture", _POSTAL_BEFORE_PREF, 0.7),
            ],
        ),
        CheckedRecognizer(
            "JP_ADDRESS",
            [("address_full", _ADDRESS_FULL, 0.85), ("address_city", _ADDRESS_CITY, 0.6)],
        ),
    ]
