"""How names and user text appear in generated prose (``explain``, ``plan``).

Node names, labels and prompts come from the definition: a hostile one may
hold newlines, control characters, backticks or Markdown. ``code`` shows a
name as inline code that no content can break out of; ``quote`` shows free
text on one line (Markdown specials escaped when asked). Neither can start a
new line, so nothing in a definition can forge a heading or a bullet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["code", "quote", "one_line", "names", "plural", "seconds"]

# C0/C1 controls, DEL, and the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Inline Markdown only: a quote never starts a line, so ``#``, ``-`` and ``1.`` are safe.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~&])")
_TICKS = re.compile("`+")


def one_line(text: str) -> str:
    """``text`` with every control character and line break written as an escape (``\\n``)."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\u{ord(char):04x}")

    return _UNSAFE.sub(escape, text)


def code(name: str) -> str:
    """``name`` as inline code (Markdown's rules, readable as plain text too)."""
    text = one_line(str(name))
    longest = max((len(m) for m in _TICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    if not text or text.startswith("`") or text.endswith("`") or text != text.strip():
        text = f" {text} "
    return f"{fence}{text}{fence}"


def quote(text: str, *, markdown: bool = False) -> str:
    """Free text (a prompt, say) in double quotes on one line; Markdown specials escaped."""
    line = one_line(str(text))
    if markdown:
        line = _MARKDOWN.sub(r"\\\1", line)
    return f"\u201c{line}\u201d"


def names(items: Iterable[str], conj: str = "and") -> str:
    """``a``, ``b`` and ``c``: each name as code, joined for a sentence."""
    shown = [code(i) for i in items]
    if len(shown) <= 1:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} {conj} {shown[-1]}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 node``, ``3 nodes``."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def seconds(value: float) -> str:
    """A duration for a reader: ``0.5 s``, ``90 s (1.5 min)``, ``7200 s (2 h)``."""
    text = f"{value:g} s"
    if value >= 3600:
        return f"{text} ({value / 3600:g} h)"
    if value >= 60:
        return f"{text} ({value / 60:g} min)"
    return text
