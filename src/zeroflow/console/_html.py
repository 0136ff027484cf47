"""Escaping for the console's pages: every value is text unless it is already ``Markup``.

``Markup`` is a ``str`` that is known to be safe HTML (written here, or built
from escaped parts); ``esc`` turns anything else into escaped text, so a run's
node names, state and prompts can never become markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["Markup", "esc", "fill", "join", "path_part"]


class Markup(str):
    """HTML that is safe as it is: written by the console, or made of escaped values."""

    __slots__ = ()


def esc(value: object) -> Markup:
    """``value`` as HTML text (quotes too, so it is safe inside an attribute); Markup passes."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def fill(template: str, **values: object) -> Markup:
    """``template`` (the console's own HTML) with each ``{name}`` replaced by ``esc(value)``."""
    return Markup(template.format_map({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    """Escaped ``parts`` (Markup kept as it is) joined by ``sep``."""
    return Markup(sep.join(esc(p) for p in parts))


def path_part(value: str) -> str:
    """``value`` as one URL path segment: every reserved character percent-encoded."""
    return quote(value, safe="")
