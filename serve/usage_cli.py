"""``raygate usage``: the usage report of a running gateway, as a table or JSON.

The admin key comes from ``--admin-key-file``, else ``RAYGATE_ADMIN_KEY``, else the file
``raygate up`` writes (``$RAYGATE_HOME/raygate-admin-key``). A team auditor key works too
(its own team only).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson

from serve import settings

__all__ = ["COLUMNS", "build_parser", "format_table", "main"]

COLUMNS = (
    "team",
    "model",
    "day",
    "requests",
    "tokens",
    "cost",
    "p50",
    "p95",
    "error %",
    "cache-hit %",
)
NUMERIC = frozenset(COLUMNS[3:])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raygate usage", description="The usage report of a running gateway."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--since", help="ISO-8601 start (default: 7 days before --until)")
    parser.add_argument("--until", help="ISO-8601 end, exclusive (default: now)")
    parser.add_argument("--team", help="one team only")
    parser.add_argument("--json", action="store_true", help="print the raw report as JSON")
    parser.add_argument("--admin-key-file", type=Path, help="file holding the admin key")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    return parser


def _admin_key(path: Path | None) -> str | None:
    if path is None:
        from_env = settings.env("RAYGATE_ADMIN_KEY")
        if from_env:
            return from_env
        path = settings.raygate_home() / "raygate-admin-key"
    try:
        return path.expanduser().read_text().strip() or None
    except OSError:
        return None


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}ms"


def _row(entry: Mapping[str, Any]) -> tuple[str, ...]:
    tokens = int(entry["input_tokens"]) + int(entry["output_tokens"])
    return (
        entry["team"] or "-",
        entry["model"] or "-",
        entry["day"],
        str(entry["requests"]),
        str(tokens),
        f"${float(entry['cost_usd']):.4f}",
        _ms(entry["p50_ms"]),
        _ms(entry["p95_ms"]),
        f"{100 * float(entry['error_rate']):.1f}",
        f"{100 * float(entry['cache_hit_rate']):.1f}",
    )


def format_table(report: Mapping[str, Any]) -> str:
    rows = [COLUMNS, *(_row(e) for e in report.get("data", []))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        out = [
            cell.rjust(w) if name in NUMERIC else cell.ljust(w)
            for cell, w, name in zip(cells, widths, COLUMNS, strict=True)
        ]
        return "  ".join(out).rstrip()

    text = [line(r) for r in rows]
    if len(rows) == 1:
        text.append("(no requests in this window)")
    return "\n".join(text)


def main(
    argv: Sequence[str] | None = None,
    *,
    admin_key: str | None = None,
    transport: httpx.BaseTransport | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`admin_key` and `transport` let a caller (or a test) supply them directly."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    key = admin_key or _admin_key(args.admin_key_file)
    if key is None:
        print(
            "raygate usage: no admin key (use --admin-key-file or set RAYGATE_ADMIN_KEY)",
            file=err,
        )
        return 2
    params = {k: v for k in ("since", "until", "team") if (v := getattr(args, k))}
    try:
        with httpx.Client(base_url=args.url, transport=transport, timeout=args.timeout) as http:
            reply = http.get(
                "/admin/usage", params=params, headers={"authorization": f"Bearer {key}"}
            )
    except httpx.HTTPError as exc:
        print(f"raygate usage: cannot reach {args.url}: {exc}", file=err)
        return 1
    try:
        body = reply.json()
    except ValueError:
        body = None
    if reply.status_code != 200 or not isinstance(body, dict):
        message = reply.text[:200]
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message"))
        print(f"raygate usage: HTTP {reply.status_code}: {message}", file=err)
        return 1
    if args.json:
        out.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(f"usage {body.get('since')} .. {body.get('until')}\n")
        out.write(format_table(body) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
