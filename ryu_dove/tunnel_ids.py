"""Names and numbers of tunnels, derived from a hypervisor's TEP address alone.

Both are stable across controller restarts without any stored allocation: the tunnel port
name on br-int, and the 32-bit key that flows put in REG_REMOTE to mean "to that hypervisor".
"""

from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache


@lru_cache(maxsize=1 << 16)
def remote_key(tep_ip: str) -> int:
    """The TEP itself for IPv4; 32 bits of a hash of an IPv6 TEP (port names must fit 15)."""
    ip = ipaddress.ip_address(tep_ip)
    if ip.version == 4:
        return int(ip)
    return int.from_bytes(hashlib.blake2b(ip.packed, digest_size=4).digest(), "big")


def tunnel_port_name(tep_ip: str) -> str:
    """`dv-` + the remote key as 8 hex digits."""
    return f"dv-{remote_key(tep_ip):08x}"
