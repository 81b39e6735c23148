"""Free loopback ports."""

import socket
from contextlib import ExitStack


def free_port() -> int:
    """A port nothing listens on right now (the caller's process binds it soon after)."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` different ports nothing listens on right now (all bound at once while chosen,
    so that no two are the same)."""
    with ExitStack() as sockets:
        ports = []
        for _ in range(n):
            s = sockets.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports
