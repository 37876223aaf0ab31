"""os-ken's hub as ryu_dove patches it (ryu_dove/oskenhub.py)."""

from __future__ import annotations

import socket
import subprocess

from os_ken.lib import hub

import ryu_dove.app  # noqa: F401  (applies the patches)


def test_listening_sockets_take_a_thousand_switches_connecting_at_once() -> None:
    server = hub.StreamServer(("127.0.0.1", 0), None)
    try:
        port = server.server.getsockname()[1]
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                             text=True, check=True).stdout.split()
        assert int(out[2]) == socket.SOMAXCONN >= 1024  # Send-Q of a listener: its backlog
    finally:
        server.server.close()
