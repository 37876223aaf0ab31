"""Hostile peers against a real lab: a rogue ovsdb-server that reaches the controller's
OVSDB port and claims a running hypervisor is refused (without a certificate at the TLS
handshake; with another hypervisor's certificate, or over plaintext, by the first claim),
shown, and changes nothing on any switch; tenant traffic keeps flowing."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dove_lab.lab import Lab
from dove_lab.ovs_instance import SCHEMA
from dove_lab.probe import Fate
from ovsdb_agent import contract
from tests.integration.helpers import api_get, fate, installed, wait_for, wait_in_sync
from tests.integration.test_controller_lifecycle import TWO_TENANTS

OVSDB_PORT = 6640
OFP_PORT = 6653


class Rogue:
    """An ovsdb-server of our own in the root namespace, managed by the lab's controller."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.db = f"unix:{root / 'db.sock'}"
        self.pidfile = root / "ovsdb-server.pid"
        subprocess.run(["ovsdb-tool", "create", str(root / "conf.db"), SCHEMA], check=True)
        subprocess.run(["ovsdb-server", str(root / "conf.db"), f"--remote=punix:{root}/db.sock",
                        "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                        "--private-key=db:Open_vSwitch,SSL,private_key",
                        "--certificate=db:Open_vSwitch,SSL,certificate",
                        "--ca-cert=db:Open_vSwitch,SSL,ca_cert",
                        f"--pidfile={self.pidfile}", f"--log-file={root / 'ovsdb.log'}",
                        f"--unixctl={root / 'ovsdb.ctl'}", "--detach"], check=True)
        self.vsctl("--no-wait", "init")

    def vsctl(self, *args: str) -> None:
        subprocess.run(["ovs-vsctl", f"--db={self.db}", *args], check=True,
                       capture_output=True)

    def claim(self, name: str, tep: str, controller_ip: str, lab: Lab | None = None,
              certified_as: str | None = None) -> None:
        """Say it is `name` on `tep`, and connect: over TLS with a certificate of the lab's
        PKI made for `certified_as`, or over plain TCP."""
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   f"external_ids:{contract.HYPERVISOR}={name}",
                   f"external_ids:{contract.TEP_IP}={tep}")
        kind = "tcp"
        if lab is not None and certified_as is not None:
            pki = lab.state().pki
            pair = pki.issue(certified_as, "switch")
            self.vsctl("--no-wait", "set-ssl", str(pair.key), str(pair.cert),
                       str(pki.controller_ca))
            kind = "ssl"
        self.vsctl("--no-wait", "set-manager", f"{kind}:{controller_ip}:{OVSDB_PORT}")

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(self.pidfile.read_text()), signal.SIGTERM)


@pytest.fixture
def rogue(tmp_path: Path) -> Iterator[Rogue]:
    peer = Rogue(tmp_path)
    yield peer
    peer.stop()


def snapshot(lab: Lab) -> dict[str, object]:
    return {"flows": {hv: set(installed(lab, hv)) for hv in ("hv1", "hv2")},
            "endpoints": api_get(lab, "endpoints"), "tunnels": api_get(lab, "tunnels")}


@pytest.mark.parametrize("claim, reason", [
    ("name", "hypervisor hv2 reports over another connection"),
    ("tep", "TEP {tep} is held by hypervisor hv2"),
])
def test_over_plaintext_a_rogue_claiming_a_hypervisor_changes_nothing(make_lab, write_topology,
                                                                      rogue: Rogue, claim: str,
                                                                      reason: str) -> None:
    lab = make_lab(write_topology(TWO_TENANTS), controller=True, tls=False)
    wait_in_sync(lab)
    assert fate(lab, "a1", "a2") is Fate.REACHES
    before = snapshot(lab)
    tep = next(h["tep_ip"] for h in api_get(lab, "hypervisors") if h["name"] == "hv2")
    controller_ip = lab.status()["controller"]["address"]
    rogue.claim("hv2" if claim == "name" else "hv9", str(tep), str(controller_ip))
    expected = reason.format(tep=tep)
    wait_for(lambda: any(expected in str(r["reason"]) for r in api_get(lab, "refused")), 15,
             "the rogue's claim to be refused")
    wait_in_sync(lab)  # had the claim changed any desired flow, it would be installed now
    assert snapshot(lab) == before
    assert fate(lab, "a1", "a2") is Fate.REACHES and fate(lab, "g1", "g2") is Fate.REACHES
    rogue.stop()
    wait_for(lambda: not any(expected in str(r["reason"]) for r in api_get(lab, "refused")),
             15, "the refusal to go with the rogue's connection")


def test_over_tls_a_rogue_without_or_with_another_certificate_changes_nothing(
        make_lab, write_topology, rogue: Rogue, tmp_path: Path) -> None:
    lab = make_lab(write_topology(TWO_TENANTS), controller=True)
    wait_in_sync(lab)
    before = snapshot(lab)
    tep = next(h["tep_ip"] for h in api_get(lab, "hypervisors") if h["name"] == "hv2")
    controller_ip = str(lab.status()["controller"]["address"])
    log = Path(lab.status()["controller"]["log"])
    rogue.claim("hv2", str(tep), controller_ip)  # plain TCP to a TLS port
    wait_for(lambda: "TLS handshake failed" in log.read_text(), 15, "the handshake refused")
    second = Rogue(tmp_path / "second")  # a certificate the lab's CA signed, for "hv9"
    try:
        second.claim("hv2", str(tep), controller_ip, lab, certified_as="hv9")
        wait_for(lambda: any("its certificate is for hv9, not hv2" in str(r["reason"])
                             for r in api_get(lab, "refused")), 15, "the claim refused")
        wait_in_sync(lab)
        assert snapshot(lab) == before
        assert fate(lab, "a1", "a2") is Fate.REACHES and fate(lab, "g1", "g2") is Fate.REACHES
    finally:
        second.stop()


def test_a_switch_reusing_another_hypervisors_datapath_id_is_refused(make_lab,
                                                                    write_topology) -> None:
    """hv2's own (valid) certificate, hv1's datapath id: the controller closes it, and hv1's
    real switch keeps its connection and its flows."""
    lab = make_lab(write_topology(TWO_TENANTS), controller=True)
    wait_in_sync(lab)
    before = snapshot(lab)
    hv1 = next(h for h in api_get(lab, "hypervisors") if h["name"] == "hv1")
    pki = lab.state().pki
    pair = pki.issue("hv2", "switch")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(pki.controller_ca))
    ctx.load_cert_chain(str(pair.cert), str(pair.key))
    address = (str(lab.status()["controller"]["address"]), OFP_PORT)
    header = struct.Struct("!BBHI")
    with ctx.wrap_socket(socket.create_connection(address, timeout=10)) as sock:
        sock.sendall(header.pack(4, 0, 16, 1) + struct.pack("!HHI", 1, 8, 1 << 4))  # HELLO
        sock.sendall(header.pack(4, 6, 32, 1)  # FEATURES_REPLY with hv1's datapath id
                     + struct.pack("!QIBB2xII", int(str(hv1["dpid"]), 16), 256, 254, 0, 0, 0))
        deadline = time.monotonic() + 10
        while sock.recv(65536):  # the controller's HELLO and requests, then its close
            assert time.monotonic() < deadline, "the impostor was not disconnected"
    log = Path(lab.status()["controller"]["log"])
    said = f"its certificate is for hv2, but datapath id {hv1['dpid']} is hv1's"
    wait_for(lambda: said in log.read_text(), 10, "the reason in the log")
    wait_in_sync(lab)
    assert snapshot(lab) == before
    assert next(h for h in api_get(lab, "hypervisors") if h["name"] == "hv1")["openflow"]
    assert fate(lab, "a1", "a2") is Fate.REACHES


def test_a_hypervisors_certificate_is_rotated_without_a_flow_changing(make_lab, write_topology,
                                                                     tmp_path: Path) -> None:
    """docs/security.md: a new certificate for the same name, `set-ssl` on the hypervisor."""
    lab = make_lab(write_topology(TWO_TENANTS), controller=True)
    wait_in_sync(lab)
    before = snapshot(lab)
    pki = lab.state().pki
    subprocess.run(["ovs-pki", f"--dir={pki.root}", "req+sign", "hv1", "switch"], cwd=tmp_path,
                   check=True, capture_output=True)  # a second certificate for hv1
    hv1 = lab.state().hypervisors["hv1"]
    subprocess.run(["ovs-vsctl", f"--db=unix:{hv1.ovs_dir}/db.sock", "set-ssl",
                    str(tmp_path / "hv1-privkey.pem"), str(tmp_path / "hv1-cert.pem"),
                    str(pki.controller_ca)], check=True)
    # New connections use the new certificate; make the OVSDB one reconnect now.
    subprocess.run(["ovs-appctl", "-t", f"{hv1.ovs_dir}/ovsdb-server.ctl",
                    "ovsdb-server/reconnect"], check=True, capture_output=True)
    log = Path(lab.status()["controller"]["log"])
    wait_for(lambda: len(re.findall(r"OVSDB of hv1 \(ssl:[^)]*\): connected", log.read_text()))
             >= 2 and any(h["name"] == "hv1" and h["ovsdb"] and h["openflow"]
                          for h in api_get(lab, "hypervisors")),
             30, "hv1 back over a connection with its new certificate")
    wait_in_sync(lab)
    assert snapshot(lab) == before and api_get(lab, "refused") == []
    assert fate(lab, "a1", "a2") is Fate.REACHES
