"""Throwaway PostgreSQL and Redis servers on loopback, for the contrib integration tests.

Each server gets a fresh directory and a free port and is stopped at the end.
PostgreSQL refuses to run as root, so under root its commands run as the
``postgres`` user the Debian package creates (or ``nobody``). The binaries are
looked up where Debian installs them (``/usr/lib/postgresql/<version>/bin``),
then on ``PATH``. Also used by ``examples/05_celery_fleet`` (``--throwaway``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "ServerUnavailable",
    "find_binary",
    "free_port",
    "postgres_server",
    "redis_server",
]


class ServerUnavailable(RuntimeError):
    """A server binary is not installed (tests skip locally, fail in CI)."""


def find_binary(name: str) -> str:
    """The path of a PostgreSQL or Redis binary; ``ServerUnavailable`` naming the package."""
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for folder in reversed(versions):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        package = "redis-server" if name.startswith("redis") else "postgresql"
        raise ServerUnavailable(
            f"{name} not found (install Debian's {package}: apt-get install -y {package})"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged() -> dict[str, Any]:
    """``subprocess`` arguments that drop root to the ``postgres`` (or ``nobody``) user."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise ServerUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _run(args: list[str], drop: dict[str, Any], log: Path) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **drop)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n{tail}"
        )


@contextmanager
def postgres_server(*, fsync: bool = False) -> Iterator[str]:
    """Start a fresh cluster on 127.0.0.1:<free port>; yield its conninfo; stop and delete it.

    ``fsync=False`` (tests) trades durability on power loss for speed; a killed
    process still loses nothing committed.
    """
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    drop = _unprivileged()
    base = Path(tempfile.mkdtemp(prefix="zf-pg-"))
    if drop:
        os.chown(base, drop["user"], drop["group"])
    data, log = base / "data", base / "server.log"
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c max_connections=200 "
        f"-c fsync={'on' if fsync else 'off'} -c shared_buffers=64MB"
    )
    if not fsync:
        options += " -c synchronous_commit=off -c full_page_writes=off"
    started = False
    try:
        _run(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            drop,
            log,
        )
        _run([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"], drop, log)
        started = True
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        if started:
            subprocess.run(
                [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
                **drop,
            )
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """Start ``redis-server`` on 127.0.0.1:<free port> without persistence; yield its URL."""
    binary = find_binary("redis-server")
    base = Path(tempfile.mkdtemp(prefix="zf-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
            *("--dir", str(base), "--logfile", str(base / "redis.log")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = base / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {port}:\n{tail}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)
