"""Pattern tier recognizers: one row per case, positive and negative."""
# ruff: noqa: RUF001  (full-width digits, look-alike letters are the test inputs)

from __future__ import annotations

import pytest

from guardrails.pattern_tier import PatternDetector

DETECTOR = PatternDetector()


def found(text: str) -> list[tuple[str, str]]:
    return [(s.entity_type, text[s.start : s.end]) for s in DETECTOR.detect(text)]


POSITIVE = [
    ("Write to jane.doe@example.co.uk today", "EMAIL_ADDRESS", "jane.doe@example.co.uk"),
    ("メールはtaro@example.jpまで", "EMAIL_ADDRESS", "taro@example.jp"),
    ("Call 212-555-0199 now", "PHONE_NUMBER", "212-555-0199"),
    ("Call +1 (415) 555-2671", "PHONE_NUMBER", "+1 (415) 555-2671"),
    ("Phone: +44 20 7946 0958", "PHONE_NUMBER", "+44 20 7946 0958"),
    ("携帯は090-1234-5678です", "PHONE_NUMBER", "090-1234-5678"),
    ("携帯は０９０−１２３４−５６７８です", "PHONE_NUMBER", "０９０−１２３４−５６７８"),
    ("電話09012345678まで", "PHONE_NUMBER", "09012345678"),
    ("代表03-1234-5678です", "PHONE_NUMBER", "03-1234-5678"),
    ("フリーダイヤル0120-123-456", "PHONE_NUMBER", "0120-123-456"),
    ("窓口0800-123-4567へ", "PHONE_NUMBER", "0800-123-4567"),
    ("国際電話+81-90-1234-5678", "PHONE_NUMBER", "+81-90-1234-5678"),
    ("card 4111 1111 1111 1111 exp 12/29", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("カード番号4111111111111111です", "CREDIT_CARD", "4111111111111111"),
    ("amex 3782 822463 10005", "CREDIT_CARD", "3782 822463 10005"),
    ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN DE89370400440532013000.", "IBAN_CODE", "DE89370400440532013000"),
    ("server 192.168.10.20 is down", "IP_ADDRESS", "192.168.10.20"),
    ("v6 2001:db8:85a3::8a2e:370:7334 up", "IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334"),
    ("SSN 123-45-6789", "US_SSN", "123-45-6789"),
    ("my social security number is 123 45 6789", "US_SSN", "123 45 6789"),
    ("My Number 123456789018 please", "JP_MY_NUMBER", "123456789018"),
    ("マイナンバーは1234-5678-9018です", "JP_MY_NUMBER", "1234-5678-9018"),
    ("マイナンバー１２３４５６７８９０１８", "JP_MY_NUMBER", "１２３４５６７８９０１８"),
    ("〒100-0005 東京都", "JP_POSTAL_CODE", "〒100-0005"),
    ("郵便番号は530-0001です", "JP_POSTAL_CODE", "530-0001"),
    ("住所は東京都千代田区丸の内1-2-3です", "JP_ADDRESS", "東京都千代田区丸の内1-2-3"),
    ("大阪府大阪市北区梅田3丁目1番3号", "JP_ADDRESS", "大阪府大阪市北区梅田3丁目1番3号"),
    ("https://admin:hunter2@example.com/x", "URL_CREDENTIALS", "admin:hunter2"),
    ("postgres://app:S3cr3t!@db.internal:5432/prod", "URL_CREDENTIALS", "app:S3cr3t!"),
    ("id AKIAIOSFODNN7EXAMPLE ok", "AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
    ("キーはASIAY34FZKBOKMUTVV7Aです", "AWS_ACCESS_KEY_ID", "ASIAY34FZKBOKMUTVV7A"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SECRET_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        '{"type": "service_account", "private_key_id": "0123456789abcdef0123456789abcdef01234567"}',
        "GCP_SERVICE_ACCOUNT_KEY",
        "0123456789abcdef0123456789abcdef01234567",
    ),
    (
        "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 x",
        "GITHUB_TOKEN",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    ),
    (
        "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
        "GITHUB_TOKEN",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
    ),
    ("slack xoxb-1234567890-abcdefghijkl", "SLACK_TOKEN", "xoxb-1234567890-abcdefghijkl"),
    (
        "OPENAI_API_KEY=sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12",
        "OPENAI_API_KEY",
        "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12",
    ),
    ("password=hunter22 host=db", "PASSWORD", "hunter22"),
    ("パスワードはTokyo2024!です", "PASSWORD", "Tokyo2024!"),
    ("Dear Alice Goldberg, thanks", "PERSON", "Alice Goldberg"),
    ("please ask Dr. Paavolainen", "PERSON", "Paavolainen"),
    ("Best regards,\nJohn Smith", "PERSON", "John Smith"),
    ("田中太郎様へのご連絡", "PERSON", "田中太郎"),
    ("担当の鈴木です", "PERSON", "鈴木"),
]


@pytest.mark.parametrize(("text", "entity", "value"), POSITIVE)
def test_recognizer_finds(text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(text)


JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [(f"Bearer {JWT}", "JWT", JWT), (f"key:\n{PEM}\n", "PRIVATE_KEY", PEM)],
)
def test_multiline_and_encoded_secrets(text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(text)


NEGATIVE = [
    ("card 4111 1111 1111 1112 fails Luhn", "CREDIT_CARD"),
    ("ref 12345678901234111111111111111111 is a long run", "CREDIT_CARD"),
    ("order 41111111111111110000 has 20 digits", "CREDIT_CARD"),
    ("My Number 123456789012 has a wrong check digit", "JP_MY_NUMBER"),
    ("番号99123456789018は長い番号", "JP_MY_NUMBER"),
    ("IBAN GB82 WEST 1234 5698 7654 33 bad checksum", "IBAN_CODE"),
    ("version 1.2.3 and 999.1.1.1", "IP_ADDRESS"),
    ("at 12:30:45 we met", "IP_ADDRESS"),
    ("SSN 000-12-3456 is invalid", "US_SSN"),
    ("invoice 2024-1234-5678 total", "PHONE_NUMBER"),
    ("amount 123456 yen", "PHONE_NUMBER"),
    ("コードは123-4567です", "JP_POSTAL_CODE"),
    ("JWT eyJub3RKc29uIjp0cnVl.eyJzdWIiOiIxIn0.abc", "JWT"),
    ("use sk-learn-is-a-python-library-name ok", "OPENAI_API_KEY"),
    ('password: "${DB_PASSWORD}"', "PASSWORD"),
    ("password = os.environ['DB_PASS']", "PASSWORD"),
    ("Hello World, the May report is ready. Will it rain?", "PERSON"),
    ("関東です。山田商事様", "PERSON"),
    ("https://example.com/path?q=a:b", "URL_CREDENTIALS"),
]


@pytest.mark.parametrize(("text", "entity"), NEGATIVE)
def test_recognizer_rejects(text: str, entity: str) -> None:
    assert entity not in {e for e, _ in found(text)}


def test_spans_map_back_to_original_full_width_offsets() -> None:
    text = "電話：０３−１２３４−５６７８（代表）"
    (span,) = DETECTOR.detect(text)
    assert text[span.start : span.end] == "０３−１２３４−５６７８"


def test_secret_wins_over_digits_inside_it() -> None:
    text = "key AKIA1234567890123456 here"
    assert found(text) == [("AWS_ACCESS_KEY_ID", "AKIA1234567890123456")]
