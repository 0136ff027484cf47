"""Who may use the console: the access token, the Host check, and per-session CSRF tokens.

- On a loopback address with no token, only requests whose ``Host`` header names
  that loopback address are served (a web page elsewhere cannot reach the
  console by rebinding a DNS name to 127.0.0.1).
- With a token (required on any other address) every request but the
  stylesheet and the login form must carry it: an ``Authorization: Bearer
  <token>`` header, or the cookie that the login form sets after the token
  was typed once.
- Every form that changes something carries the session's CSRF token, which
  must equal the ``zf_csrf`` cookie (compared with ``secrets.compare_digest``).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

__all__ = [
    "ACCESS_COOKIE",
    "CSRF_COOKIE",
    "Guard",
    "cookies_of",
    "is_loopback",
    "loopback_hosts",
    "new_secret",
]

ACCESS_COOKIE = "zf_access"
CSRF_COOKIE = "zf_csrf"


def new_secret() -> str:
    """A fresh unguessable token (access token, CSRF token)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookies_of(header: str | None) -> dict[str, str]:
    """The cookies of a ``Cookie`` header; a malformed header counts as none."""
    if not header:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _same(given: str | None, expected: str) -> bool:
    return bool(given) and secrets.compare_digest(
        str(given).encode("utf-8", "replace"), expected.encode("utf-8")
    )


@dataclass(frozen=True, slots=True)
class Guard:
    """The console's checks; ``token`` None means a loopback console open to this machine."""

    token: str | None
    hosts: frozenset[str]
    """``Host`` header values served when there is no token (the loopback names with port)."""

    def host_ok(self, host_header: str | None) -> bool:
        """With no token, the request must name the console's own loopback address."""
        if self.token is not None:
            return True
        return (host_header or "").lower() in self.hosts

    def authorised(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """True when no token is set, or the request carries it (header or login cookie)."""
        if self.token is None:
            return True
        auth = headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and _same(value.strip(), self.token):
            return True
        return _same(cookies.get(ACCESS_COOKIE), self.token)

    def token_matches(self, typed: str | None) -> bool:
        """The login form's check of a typed token."""
        return self.token is not None and _same(typed, self.token)

    @staticmethod
    def csrf_ok(cookies: Mapping[str, str], form_value: str | None) -> bool:
        """The form's CSRF field equals the session's cookie (both present)."""
        cookie = cookies.get(CSRF_COOKIE)
        return bool(cookie) and _same(form_value, str(cookie))


def loopback_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` values a loopback console at ``host:port`` answers to."""
    names = {host.lower(), "localhost", "127.0.0.1", "[::1]"}
    out = {f"{name}:{port}" for name in names}
    if port == 80:
        out |= names
    return frozenset(out)
