"""Prompt-injection heuristics (English and Japanese) over cleaned text.

Each rule has a name (reported as a signal, never the matched text). They match
`clean_for_matching` output: lower case, no invisible characters, homoglyphs undone.
"""

from __future__ import annotations

import re

__all__ = ["RULES", "matching_rules"]

_PRIOR = (
    r"(?:all |any |the |your |my )?"
    r"(?:previous|prior|above|earlier|preceding|former|original|initial|system)"
)
_ORDERS = r"(?:instructions?|prompts?|rules?|directives?|guidelines?|commands?|orders?|context)"
_JA_PRIOR = r"(?:以前|これまで|今まで|前|上記|上|先ほど|最初|元|既存|過去|前述|従来|全て|すべて)の?"
_JA_ORDERS = r"(?:指示|命令|ルール|設定|プロンプト|制約|指令|規則|ガイドライン)"

RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        (
            "ignore_previous_instructions",
            r"\b(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|discard|neglect)\b"
            r"[^.\n]{0,24}?\b" + _PRIOR + r"\b[^.\n]{0,16}?\b" + _ORDERS + r"\b",
        ),
        (
            "new_instructions",
            r"\b(?:new|updated|real|actual|true) (?:system )?instructions?\s*(?::|are|follow)",
        ),
        (
            "reveal_system_prompt",
            r"\b(?:reveal|show|print|display|output|repeat|leak|expose|dump|tell me|give me|"
            r"what (?:is|are)|recite|share)\b[^.\n]{0,30}?\b(?:system|initial|hidden|secret|"
            r"original|internal|developer|your) (?:prompt|instructions?|message|rules|"
            r"configuration)",
        ),
        (
            "role_override",
            r"\byou are (?:now|no longer|free|going to be)\b|\bfrom now on,? you (?:are|will)\b|"
            r"\bact as (?:an? )?(?:unrestricted|unfiltered|uncensored|evil|jailbroken)\b",
        ),
        (
            "jailbreak_persona",
            r"\b(?:dan|do anything now|developer mode|god mode|jailbreak(?:ed|ing)?|"
            r"unfiltered mode|no restrictions|without (?:any )?(?:restrictions|filters|limits|"
            r"censorship)|stan|aim|dude mode)\b",
        ),
        (
            "disable_safety",
            r"\b(?:disable|turn off|deactivate|remove|ignore|bypass)\b[^.\n]{0,20}?\b(?:safety|"
            r"content (?:policy|filter)|filters?|guardrails?|moderation|restrictions|ethical"
            r" guidelines)\b",
        ),
        (
            "fake_role_tag",
            r"(?:^|\n)\s*(?:\[|<\|?|###\s*|\{\{)?\s*(?:system|assistant|developer)\s*(?:\]|\|?>|:"
            r"|\}\})|<\|im_start\|>|<\|endoftext\|>|\[/?inst\]|<</?sys>>|</?system>",
        ),
        (
            "ja_ignore_previous",
            _JA_PRIOR
            + r"[^。\n]{0,8}?"
            + _JA_ORDERS
            + r"[^。\n]{0,10}?(?:無視|忘れ|破棄|無効|取り消|"
            r"リセット|従わな|上書き)",
        ),
        (
            "ja_reveal_system_prompt",
            r"(?:システムプロンプト|初期プロンプト|隠し(?:プロンプト|メッセージ|指示)|システムメッセージ|"
            r"(?:最初|元|裏|本当)の(?:指示|命令|ルール)|与えられた(?:指示|命令)|プロンプトの全文)"
            r"[^。\n]{0,16}?(?:表示|出力|教え|見せ|開示|貼り|引用|繰り返|暴露|翻訳|ダンプ)",
        ),
        (
            "ja_jailbreak",
            r"(?:開発者モード|制限(?:のない|なし|を解除)|検閲(?:なし|されていない)|フィルター(?:を解除|"
            r"のない|をオフ)|安全(?:ガイドライン|フィルター|チェック)[^。\n]{0,6}?(?:無効|解除|オフ|行わない)|"
            r"ジェイルブレイク|倫理(?:規定|的な制約)[^。\n]{0,8}?(?:適用されません|無視)|絶対服従)",
        ),
        (
            "ja_role_override",
            r"(?:今から|これから|以降、?|今後)あなたは[^。\n]{0,20}?(?:ai|モデル|キャラクター|として)|"
            r"あなたはもう[^。\n]{0,10}?ではありません|【システム】|^システム:",
        ),
    )
)


def matching_rules(cleaned: str) -> list[str]:
    return [name for name, pattern in RULES if pattern.search(cleaned)]
