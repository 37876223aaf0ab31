"""The fabric the pipeline tests judge compile_switch on: the flows run on a fake switch, tests
ask where packets go. The topology below uses policies/example.yaml:

    hv1: web1 .10, web2 .11 (acme/web), db1 .70 (acme/db), gx1 .10, gx2 .11 (globex/web)
    hv2: web3 .12 (acme/web), gx3 .12 (globex/web)
    hv3: db2 .71 (acme/db)                      -- acme only
    hv4: web4 .13 (acme/web)                    -- acme only

acme/web and globex/web share 198.51.100.0/26, and their VMs share addresses on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from types import MappingProxyType

from ryu_dove.directory import Endpoint, Hypervisor, MemoryDirectory
from ryu_dove.pipeline.compiler import compile_switch
from ryu_dove.policy import Policy, load_policy
from tests.fakes.br_int import (
    BROADCAST_MAC,
    Delivery,
    FakeBrInt,
    Packet,
    arp_request,
    ipv4,
)

ROOT = Path(__file__).resolve().parents[3]
POLICY = load_policy([str(ROOT / "policies" / "example.yaml")])
HVS = ("hv1", "hv2", "hv3", "hv4")
VNI = {"acme/web": 5001, "acme/db": 5002, "globex/web": 6001}
UNKNOWN_VNI = 9999


def tunnel(remote: str) -> int:
    """The ofport of the tunnel to `remote`: the same number on every hypervisor."""
    return 100 + HVS.index(remote)


def hypervisor(name: str, names: Sequence[str] = HVS) -> Hypervisor:
    tunnels = {other: tunnel(other) for other in names if other != name}
    return Hypervisor(name, f"192.0.2.{HVS.index(name) + 1}", dpid=HVS.index(name) + 1,
                      tunnels=MappingProxyType(tunnels))


def vm(name: str, network: str, hv: str, ofport: int, ip: str, mac: str) -> Endpoint:
    return Endpoint(network, mac, (ip,), hv, f"tap-{name}", ofport, f"iface-{name}")


WEB1 = vm("web1", "acme/web", "hv1", 1, "198.51.100.10", "02:ac:00:00:00:01")
WEB2 = vm("web2", "acme/web", "hv1", 2, "198.51.100.11", "02:ac:00:00:00:02")
DB1 = vm("db1", "acme/db", "hv1", 3, "198.51.100.70", "02:ac:00:00:00:03")
GX1 = vm("gx1", "globex/web", "hv1", 4, "198.51.100.10", "02:9e:00:00:00:01")
GX2 = vm("gx2", "globex/web", "hv1", 5, "198.51.100.11", "02:9e:00:00:00:02")
WEB3 = vm("web3", "acme/web", "hv2", 1, "198.51.100.12", "02:ac:00:00:00:04")
GX3 = vm("gx3", "globex/web", "hv2", 2, "198.51.100.12", "02:9e:00:00:00:03")
DB2 = vm("db2", "acme/db", "hv3", 1, "198.51.100.71", "02:ac:00:00:00:05")
WEB4 = vm("web4", "acme/web", "hv4", 1, "198.51.100.13", "02:ac:00:00:00:06")
ALL = (WEB1, WEB2, DB1, GX1, GX2, WEB3, GX3, DB2, WEB4)


def build_directory(endpoints: Iterable[Endpoint] = ALL,
                    hvs: Sequence[str] = HVS) -> MemoryDirectory:
    directory = MemoryDirectory()
    eps = list(endpoints)
    for name in hvs:
        directory.put_hypervisor(hypervisor(name, hvs))
        directory.replace_endpoints(name, [e for e in eps if e.hypervisor == name])
    return directory


class Fabric:
    """Every hypervisor's br-int, compiled from one policy and directory."""

    def __init__(self, directory: MemoryDirectory, policy: Policy = POLICY) -> None:
        self.switches = {hv.name: FakeBrInt(compile_switch(policy, directory, hv.name))
                         for hv in directory.hypervisors()}

    def send(self, src: Endpoint, packet: Packet) -> list[Delivery]:
        return self.switches[src.hypervisor].process(packet, in_port=src.ofport)

    def receive(self, hv: str, remote: str, vni: int, packet: Packet) -> list[Delivery]:
        """`packet` arrives on `hv` from the tunnel to `remote`, with tunnel key `vni`."""
        return self.switches[hv].process(packet, in_port=tunnel(remote), tunnel_id=vni)


def to(src: Endpoint, dst: Endpoint) -> Packet:
    return ipv4(src.mac, dst.mac, src.ips[0], dst.ips[0])


def broadcast(src: Endpoint) -> Packet:
    return ipv4(src.mac, BROADCAST_MAC, src.ips[0], "198.51.100.63", proto=17)


def ask(src: Endpoint, ip: str) -> Packet:
    return arp_request(src.mac, src.ips[0], ip)


def ports(deliveries: Iterable[Delivery]) -> set[int]:
    return {d.port for d in deliveries}


def keyed(deliveries: Iterable[Delivery]) -> dict[int, int]:
    """Port -> tunnel key of the copies sent into tunnels."""
    return {d.port: d.tunnel_id for d in deliveries if d.tunnel_id}


def fate(deliveries: Iterable[Delivery]) -> dict[int, int]:
    return {d.port: d.tunnel_id for d in deliveries}
