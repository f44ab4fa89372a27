"""Tests for the report's text helpers: the escaped markdown subset, numbers, durations, slugs."""

from __future__ import annotations

import pytest

from posetransfer.report.html_text import (
    format_number,
    format_seconds,
    inline_to_html,
    markdown_to_html,
    slugify,
)


def test_raw_html_is_escaped_not_passed_through() -> None:
    text = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    assert inline_to_html(text) == (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;"
    )


def test_inline_markup() -> None:
    assert inline_to_html("a **b** c") == "a <strong>b</strong> c"
    assert inline_to_html("run `make <x>` now") == "run <code>make &lt;x&gt;</code> now"
    # No bold inside code; an unmatched backtick stays literal.
    assert inline_to_html("`**x**`") == "<code>**x**</code>"
    assert inline_to_html("a ` b") == "a ` b"


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("metrics.json", True),
        ("../run/stats.jsonl", True),
        ("#metrics", True),
        ("https://example.org/a?b=1&c=2", True),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("file:///etc/passwd", False),
    ],
)
def test_links_only_relative_or_http(url: str, linked: bool) -> None:
    out = inline_to_html(f"see [the file]({url})")
    if linked:
        assert out == f'see <a href="{url.replace("&", "&amp;")}">the file</a>'
    else:
        assert "<a" not in out
        assert out == f"see [the file]({url})"


def test_markdown_blocks() -> None:
    text = "First line\ncontinues.\n\n- one\n* **two**\n\n\n  Last.  "
    assert markdown_to_html(text) == (
        "<p>First line continues.</p>\n<ul><li>one</li><li><strong>two</strong></li></ul>\n"
        "<p>Last.</p>"
    )
    assert markdown_to_html("  \n\n ") == ""
    # A block mixing bullets and text is a paragraph.
    assert markdown_to_html("- a\nb") == "<p>- a b</p>"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "n/a"),
        (float("nan"), "n/a"),
        (float("inf"), "∞"),
        (float("-inf"), "−∞"),
        (0.0, "0.0000"),
        (0.81234, "0.8123"),
        (-0.5, "-0.5000"),
        (22.104, "22.10"),
        (123.45, "123.5"),
        (0.00012345, "0.000123"),
    ],
)
def test_format_number(value: float | None, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0123, "0.0123 s"),
        (12.5, "12.5 s"),
        (59.4, "59.4 s"),
        (59.6, "1 min 00 s"),
        (119.7, "2 min 00 s"),
        (330.0, "5 min 30 s"),
        (3569.0, "59 min 29 s"),
        (3580.0, "1 h 00 min"),
        (3960.0, "1 h 06 min"),
    ],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_slugify() -> None:
    assert slugify("3D flow (synth)") == "3d-flow-synth"
    assert slugify("<>") == "x"
    assert slugify("a" * 100) == "a" * 40
