"""The run console: a local web page over a store (``zeroflow ui``), standard library only.

``make_server`` builds a ``ConsoleServer`` (a ``ThreadingHTTPServer``) that
lists runs, shows one run (picture with its overlay, audit trail, state,
events, waits, checkpoints) and, given ``handlers``, resumes, redrives, forks
and breaks leases through ``WorkflowEngine``. It binds 127.0.0.1 by default;
any other address requires an access token. Not imported by ``import zeroflow``.
See docs/USER_GUIDE.md ("The run console").
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._errors import ConsoleSetupError
from .._store import WorkflowStore
from ._actions import Actions
from ._catalog import Catalog, load_catalog
from ._listing import DamageLog
from ._security import Guard, is_loopback, loopback_hosts, new_secret
from ._server import ConsoleApp, ConsoleServer

__all__ = ["ConsoleServer", "ConsoleSetupError", "DamageLog", "make_server", "new_secret"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def make_server(
    store: WorkflowStore,
    *,
    handlers: Mapping[str, Any] | None = None,
    workflows: str | Path | Catalog | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    services: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    damage: DamageLog | None = None,
) -> ConsoleServer:
    """A console over ``store``, bound to ``host:port`` (0: a free port; see ``.url``).

    Without ``handlers`` it is read-only. ``workflows`` is the folder of
    definition files (``*.json``) whose pictures, lint and actions it offers.
    A ``host`` that is not a loopback address needs a ``token``
    (``ConsoleSetupError`` otherwise); with a token every request must carry
    it. ``damage`` (a ``DamageLog`` whose ``record`` is the store's
    ``on_report``) names on the runs page the runs the store skipped as damaged.
    Call ``serve_forever()`` on the result, ``shutdown()`` to stop it.
    """
    if not isinstance(store, WorkflowStore):
        raise TypeError(f"store must be a zeroflow store, got {type(store).__name__}")
    if token is not None and (len(token) < 16 or not token.isascii() or not token.isprintable()):
        raise ConsoleSetupError(
            "the console's access token must be at least 16 printable ASCII characters; "
            "leave it out to have one generated"
        )
    if token is None and not is_loopback(host):
        raise ConsoleSetupError(
            f"the console would listen on {host}, which other machines can reach: give it an "
            "access token (zeroflow ui --token T, or let the command generate one)"
        )
    catalog = workflows if isinstance(workflows, Catalog) else load_catalog(workflows)
    actions = None if handlers is None else Actions(store, handlers, catalog, services)
    app = ConsoleApp(store, catalog, Guard(token, frozenset()), actions, damage=damage)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        server = _server_class(family)((host, port), app, log)
    except OSError as exc:
        raise ConsoleSetupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    app.guard = Guard(token, loopback_hosts(host, server.server_address[1]))
    return server


def _server_class(family: socket.AddressFamily) -> type[ConsoleServer]:
    if family == socket.AF_INET:
        return ConsoleServer

    class Server6(ConsoleServer):
        address_family = socket.AF_INET6

    return Server6
