"""Text for HTML pages: caller text as safe HTML, numbers, durations and file-name slugs.

The markdown subset: paragraphs separated by blank lines, bullet lists (every line of a block
starting with ``- `` or ``* ``), ```code```, ``**bold**`` and ``[text](url)`` links whose url is
relative or ``http(s)``. Everything else is text: raw HTML is escaped, never passed through,
and links with any other scheme (``javascript:``, ``data:``, ``file:``) stay literal text.
"""

from __future__ import annotations

import html
import math
import re
from typing import Final

__all__ = ["format_number", "format_seconds", "inline_to_html", "markdown_to_html", "slugify"]

_INLINE: Final[re.Pattern[str]] = re.compile(r"\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")
_SCHEME: Final[re.Pattern[str]] = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_SAFE_SCHEME: Final[re.Pattern[str]] = re.compile(r"^https?:", re.IGNORECASE)


def _bold_and_links(text: str) -> str:
    """Escape ``text``, rendering ``**bold**`` and safe ``[text](url)`` links."""
    pieces, pos = [], 0
    for match in _INLINE.finditer(text):
        pieces.append(html.escape(text[pos : match.start()]))
        bold, label, url = match.groups()
        if bold is not None:
            pieces.append(f"<strong>{html.escape(bold)}</strong>")
        elif _SCHEME.match(url) and not _SAFE_SCHEME.match(url):
            pieces.append(html.escape(match.group(0)))
        else:
            pieces.append(f'<a href="{html.escape(url)}">{html.escape(label)}</a>')
        pos = match.end()
    pieces.append(html.escape(text[pos:]))
    return "".join(pieces)


def inline_to_html(text: str) -> str:
    """One line of the markdown subset as HTML: ```code```, ``**bold**``, ``[text](url)``.

    Args:
        text: Caller text (anything; it is escaped).

    Returns:
        HTML with no tags other than ``code``, ``strong`` and ``a``.
    """
    parts = text.split("`")
    out = []
    for k, part in enumerate(parts):
        if k % 2 == 1 and k < len(parts) - 1:  # between a pair of backticks
            out.append(f"<code>{html.escape(part)}</code>")
        elif k % 2 == 1:  # after an unmatched backtick: literal
            out.append(_bold_and_links("`" + part))
        else:
            out.append(_bold_and_links(part))
    return "".join(out)


def markdown_to_html(text: str) -> str:
    """Paragraphs and bullet lists of the markdown subset as HTML.

    Args:
        text: Caller text; blank lines separate blocks.

    Returns:
        ``<p>`` and ``<ul>`` blocks, one per line; an empty string for blank text.
    """
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(line.startswith(("- ", "* ")) for line in lines):
            items = "".join(f"<li>{inline_to_html(line[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append(f"<p>{inline_to_html(' '.join(lines))}</p>")
    return "\n".join(out)


def format_number(value: float | None) -> str:
    """A metric value for a table: 4 decimals below 10, 2 below 100, else 1.

    Args:
        value: The value; ``None`` and NaN give ``"n/a"``, infinities ``"∞"`` / ``"−∞"``, and
            magnitudes below 1e-3 three significant digits.

    Returns:
        The text.
    """
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    magnitude = abs(value)
    if 0 < magnitude < 1e-3:
        return f"{value:.3g}"
    return f"{value:.{4 if magnitude < 10 else 2 if magnitude < 100 else 1}f}"


def format_seconds(seconds: float) -> str:
    """A duration for people: ``"12.5 s"``, ``"5 min 30 s"``, ``"1 h 06 min"``."""
    if seconds < 59.5:
        return f"{seconds:.3g} s"
    if seconds < 3570:  # 59.5 min: rounds to "1 h 00 min" above
        total = round(seconds)
        return f"{total // 60} min {total % 60:02d} s"
    total = round(seconds / 60)
    return f"{total // 60} h {total % 60:02d} min"


def slugify(text: str, max_len: int = 40) -> str:
    """Lower-case ``text`` with runs of other characters as ``-``, for file names and anchors."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_len] or "x"
