"""What the prober's users see: the probe interval, its error, a VM as it sees one, and a
leak (a reply from a VM of another network than the sender's)."""

from __future__ import annotations

from dataclasses import dataclass

INTERVAL_S = 0.02


class ProbeError(RuntimeError):
    """The prober could not be set up (namespace, sockets) or was used wrongly."""


@dataclass(frozen=True)
class ProbeVm:
    """A VM as the prober sees it. `network` is "tenant/net"; `ttl` marks an incarnation.
    `routed`: the VM as seen from another network, through the sender's gateway; `mac` is
    then the gateway's, which every routed reply carries, so such replies are told by their
    source address alone."""

    name: str
    netns: str
    ip: str
    mac: str
    network: str
    ttl: int | None = None
    routed: bool = False


@dataclass(frozen=True)
class Leak:
    src: str
    dst: str
    responder_mac: str
    responder: str | None  # the VM owning that MAC, if any
    at: float
