"""Markdown that shows other people's strings (class names, texts, file names) as inert text.

Used by the evaluate stage's report.md and the model card. A class name or a text can hold anything: HTML
(`<script>`), links and images (`[a](javascript:...)`, `![x](http://evil)`), bare URLs (GitHub links them),
table pipes, emphasis, newlines that would start a heading or end a table. `escape` turns every such
character into a backslash escape (CommonMark shows the character itself) and puts the text on one line;
`code` and `fenced` keep code spans and blocks closed whatever backticks the text holds.
"""
from __future__ import annotations

import re
import unicodedata

# Backslash-escaped, each of them can start Markdown or HTML: code, emphasis, strikethrough, links and images,
# raw HTML and autolinks, entities, table cells, math ($ on GitHub), mentions and e-mail autolinks.
SPECIALS = re.compile(r"[\\`*\[\]<>&|~$@]|(?<![^\W_])_|_(?![^\W_])")
# GitHub turns bare http://, https://, ftp:// and www. into links; an escaped ':' or '.' breaks the pattern.
BARE_URL = re.compile(r"(?i)(://)|(\bwww)\.")
FENCE_RUN = re.compile(r"`+")
# At the start of a line these begin a heading, quote, list or setext underline; escaped so `escape` is inert
# wherever it is placed.
LINE_START = re.compile(r"^(\d*)([#>+=.)-])")


class Markdown(str):
    """Text that is already Markdown of our own (e.g. `**bold**`): `cell` and `table` insert it as is."""


def one_line(value: object) -> str:
    """`value` as text on one line: control characters and every kind of line break become single spaces."""
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in str(value))
    return " ".join(text.split())


def escape(value: object) -> str:
    """`value` as inert Markdown text on one line, for running text and table cells. Underscores inside a
    word (`macro_f1`) cannot start emphasis and are left as they are."""
    text = SPECIALS.sub(lambda match: "\\" + match.group(0), one_line(value))
    text = BARE_URL.sub(lambda match: "\\://" if match.group(1) else match.group(2) + "\\.", text)
    return LINE_START.sub(lambda match: match.group(1) + "\\" + match.group(2), text)


def cell(value: object) -> str:
    """A table cell: floats to 4 decimals, None as a dash, our own Markdown as is, anything else escaped."""
    if value is None:
        return "–"
    if isinstance(value, Markdown):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (bool, int)):
        return str(value)
    return escape(value)


def table(header: list, rows: list[list]) -> str:
    lines = ["| " + " | ".join(cell(v) for v in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def code(value: object) -> str:
    """An inline code span around `value` (on one line), fenced by more backticks than it contains."""
    text = one_line(value)
    if not text:
        return "` `"
    fence = "`" * (max((len(run) for run in FENCE_RUN.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fenced(content: str, info: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run in `content`, so nothing closes it early."""
    fence = "`" * max(3, max((len(run) for run in FENCE_RUN.findall(content)), default=0) + 1)
    return f"{fence}{info}\n{content.rstrip()}\n{fence}"
