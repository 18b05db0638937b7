"""The listening sockets of ``sentinel serve --processes N``: one per serving process,
all on the same port with SO_REUSEPORT, so the kernel shares incoming connections out
between the processes.

On one shared socket, asyncio accepts every waiting connection each time it finds the
socket readable: whichever process woke first took every connection of a burst (50
clients connecting at once all landed on one of two processes in some runs, the other
idle while they queued). With a socket each, the kernel picks the process when the
connection arrives, by a hash of its addresses.

The parent binds a socket of its own first, without listening on it: it reserves the
port (``--port 0`` picks it), reports a port in use as a one-line error, and is what
each process is handed; a process rebuilds it as a listening socket of its own
(``ReusePortSocket``'s pickling, see ``register_pickling``). Only processes of the same
user can join a SO_REUSEPORT group, so no other account can take the port's traffic.
"""

from __future__ import annotations

import socket
from typing import Any


class ReusePortSocket(socket.socket):
    """A bound SO_REUSEPORT socket; handed to a child process it becomes a new socket
    there, bound to the same address and listening."""

    backlog = 2048


def reserve(host: str, port: int, backlog: int = 2048) -> ReusePortSocket:
    """The parent's socket on ``host:port``, bound but not listening (connections go to
    the processes' sockets only)."""
    from sentinel.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, type_, proto, _, address = infos[0]
    sock = ReusePortSocket(family, type_, proto)
    try:
        _options(sock)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.backlog = backlog
    return sock


def _options(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def _listen_here(family: int, type_: int, proto: int, address: Any, backlog: int) -> socket.socket:
    sock = socket.socket(family, type_, proto)
    _options(sock)
    sock.bind(address)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def _reduce(s: ReusePortSocket) -> tuple[Any, tuple[Any, ...]]:
    return _listen_here, (s.family, s.type, s.proto, s.getsockname(), s.backlog)


def register_pickling() -> None:
    """Let multiprocessing hand a ReusePortSocket to the processes it spawns, as a
    listening socket of their own."""
    from multiprocessing.reduction import register

    register(ReusePortSocket, _reduce)
