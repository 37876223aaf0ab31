"""Routing between a tenant's networks by its rules, statefully, on real OVS (issue 12).

policies/example.yaml lets acme/web open TCP 5432 and ICMP to acme/db; nothing else crosses
networks, and db cannot open anything towards web. web VMs on two hypervisors, one of them
beside the db VM; globex has a VM at web1's very address.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dove_lab.lab import Lab
from dove_lab.probe import Fate, ping
from tests.integration.conftest import EXAMPLE_POLICY
from tests.integration.helpers import fate, tcp_name_server, tcp_read, wait_for, wait_in_sync

ROUTED = """
hypervisors: [hv1, hv2, hv3]
vms:
  - {name: web1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: web2, hypervisor: hv3, network: acme/web, ip: 198.51.100.11}
  - {name: db1, hypervisor: hv3, network: acme/db, ip: 198.51.100.70}
  - {name: gx1, hypervisor: hv2, network: globex/web, ip: 198.51.100.10}
"""
DB_PORT, OTHER_PORT = 5432, 5433
TCP_RULE = "      - allow: {from: web, to: db, proto: tcp, port: 5432}\n"  # in EXAMPLE_POLICY


def routed_lab(make_lab, write_topology, tmp_path: Path) -> tuple[Lab, Path]:
    """The ROUTED lab on a copy of the example policy (to edit and reload), web1 -> db1 up."""
    policy = tmp_path / "policy.yaml"
    shutil.copy(EXAMPLE_POLICY, policy)
    lab = make_lab(write_topology(ROUTED), controller=True, policy_paths=[str(policy)])
    wait_in_sync(lab)
    wait_for(lambda: fate(lab, "web1", "db1", timeout=1.0) is Fate.REACHES, 10, "web1 -> db1")
    return lab, policy


def test_web_reaches_db_by_the_rules_and_nothing_else_crosses(make_lab, write_topology):
    lab = make_lab(write_topology(ROUTED), controller=True)
    wait_in_sync(lab)
    vms = lab.state().vms
    for web in ("web1", "web2"):  # across hypervisors, and beside db1
        wait_for(lambda web=web: fate(lab, web, "db1", timeout=1.0) is Fate.REACHES, 10,
                 f"{web} to ping db1 (routed)")
    # A 3,000-byte echo goes in three fragments each way: a rule without ports (icmp) passes
    # them, at both ends (docs/pipeline.md: fragments and port rules).
    big = ["ip", "netns", "exec", vms["web1"].netns, "ping", "-n", "-q", "-c", "2", "-s",
           "3000", "-w", "5", vms["db1"].ip]
    assert subprocess.run(big, capture_output=True, timeout=10).returncode == 0
    assert not ping(vms["db1"], vms["web1"].ip, timeout=1.0)  # db cannot open towards web
    assert not ping(vms["gx1"], vms["db1"].ip, timeout=1.0)  # another tenant: never routed
    servers = [tcp_name_server(vms["db1"].netns, "db1", port) for port in (DB_PORT, OTHER_PORT)]
    servers.append(tcp_name_server(vms["web1"].netns, "web1", DB_PORT))
    try:
        for web in ("web1", "web2"):
            assert tcp_read(vms[web].netns, vms["db1"].ip, DB_PORT) == "db1", web
            assert tcp_read(vms[web].netns, vms["db1"].ip, OTHER_PORT, timeout=2.0) == "", web
        assert tcp_read(vms["db1"].netns, vms["web1"].ip, DB_PORT, timeout=2.0) == ""
        # One conntrack per connection: web1's hypervisor tracks web1 -> db1 (web opens,
        # the rules go one way), db1's keeps nothing of it.
        web1_to_db1 = f"src={vms['web1'].ip},dst={vms['db1'].ip},sport="
        assert web1_to_db1 in conntrack(lab, "hv1")
        assert web1_to_db1 not in conntrack(lab, "hv3")
    finally:
        for server in servers:
            server.kill()
            server.wait()


def conntrack(lab: Lab, hv: str) -> str:
    """A hypervisor's conntrack entries, as `ovs-appctl dpctl/dump-conntrack` lists them."""
    return lab.ovs(lab.state().hypervisors[hv]).appctl("dpctl/dump-conntrack")


_HOLD = """
import socket, sys, time
deadline = time.monotonic() + 10
while True:  # until the server listens
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
s.settimeout(0.3)
while True:  # one byte every 0.1 s; say when the connection stops carrying them
    try:
        s.sendall(b"x")
        s.recv(1)
        print("ok", time.monotonic(), flush=True)
    except OSError:
        print("cut", time.monotonic(), flush=True)
    time.sleep(0.1)
"""
_ECHO = """
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(4)
def echo(c):
    while (b := c.recv(64)):
        c.sendall(b)
while True:
    c, _ = srv.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
"""


def test_a_rule_removed_ends_its_connections_and_put_back_opens_the_path(
        make_lab, write_topology, tmp_path):
    lab, policy = routed_lab(make_lab, write_topology, tmp_path)
    vms = lab.state().vms
    server = subprocess.Popen(["ip", "netns", "exec", vms["db1"].netns, sys.executable, "-c",
                               _ECHO, str(DB_PORT)])
    client = None
    try:
        client = subprocess.Popen(["ip", "netns", "exec", vms["web1"].netns, sys.executable,
                                   "-c", _HOLD, vms["db1"].ip, str(DB_PORT)],
                                  stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None
        assert client.stdout.readline().startswith("ok")  # the connection carries bytes
        text = Path(EXAMPLE_POLICY).read_text()
        without_tcp = text.replace(TCP_RULE, "")
        assert without_tcp != text
        policy.write_text(without_tcp)
        removed = time.monotonic()
        lab.controller_reload()
        while not client.stdout.readline().startswith("cut"):
            assert time.monotonic() - removed < 10, "the connection was not cut"
        cut_after = time.monotonic() - removed
        assert cut_after < 3.0, f"cut only {cut_after:.1f} s after the reload"
        assert fate(lab, "web1", "db1", timeout=1.0) is Fate.REACHES  # ICMP's rule stands
        policy.write_text(text)
        lab.controller_reload()
        while not client.stdout.readline().startswith("ok"):  # the same connection again
            assert time.monotonic() - removed < 15, "the connection did not come back"
        # The rule that opened it goes, a broader one comes: the connection is not cut.
        policy.write_text(text.replace(TCP_RULE, "      - allow: {from: web, to: db}\n"))
        lab.controller_reload()
        swapped = time.monotonic()
        seen = []
        while time.monotonic() - swapped < 3.0:
            seen.append(client.stdout.readline().split()[0])
        assert "cut" not in seen, f"cut after the rules were swapped: {seen}"
    finally:
        for proc in (server, client):
            if proc is not None:
                proc.kill()
                proc.wait()


MATRIX_POLICY = """
tenants:
  acme:
    networks:
      web: {vni: 7001, subnet: 198.51.100.0/26}
      db: {vni: 7002, subnet: 198.51.100.64/26}
      app: {vni: 7003, subnet: 198.51.100.128/26}
    policy:
      - allow: {from: web, to: db, proto: tcp, port: 5432}
      - allow: {from: web, to: app, proto: udp, port: 8000-8010}
      - allow: {from: app, to: db, proto: icmp}
  globex:
    networks:
      web: {vni: 8001, subnet: 198.51.100.0/26}
      db: {vni: 8002, subnet: 198.51.100.64/26}
    policy:
      - allow: {from: web, to: db, proto: any}
"""
MATRIX = """
hypervisors: [hv1, hv2, hv3]
vms:
  - {name: aweb, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: adb, hypervisor: hv2, network: acme/db, ip: 198.51.100.70}
  - {name: aapp, hypervisor: hv3, network: acme/app, ip: 198.51.100.130}
  - {name: gweb, hypervisor: hv2, network: globex/web, ip: 198.51.100.10}
  - {name: gdb, hypervisor: hv1, network: globex/db, ip: 198.51.100.70}
"""
_UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(64); s.sendto(data, peer)
"""
_UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
for _ in range(6):
    try:
        s.sendto(b"x", (sys.argv[1], int(sys.argv[2]))); s.recvfrom(64); print("ok"); break
    except OSError:
        pass
"""


def _udp_reaches(netns: str, ip: str, port: int) -> bool:
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", _UDP_ASK, ip,
                          str(port)], capture_output=True, text=True, timeout=20)
    return out.stdout.strip() == "ok"


def test_a_policy_matrix_of_two_tenants_three_networks_and_three_protocols(
        make_lab, write_topology, tmp_path):
    policy = tmp_path / "matrix.yaml"
    policy.write_text(MATRIX_POLICY)
    lab = make_lab(write_topology(MATRIX), controller=True, policy_paths=[str(policy)])
    wait_in_sync(lab)
    vms = lab.state().vms
    servers = [tcp_name_server(vms[vm].netns, vm, DB_PORT) for vm in ("adb", "gdb", "aweb")]
    servers += [subprocess.Popen(["ip", "netns", "exec", vms[vm].netns, sys.executable, "-c",
                                  _UDP_ECHO, str(port)])
                for vm, port in (("aapp", 8005), ("aapp", 8011), ("gdb", 9999))]
    try:
        wait_for(lambda: tcp_read(vms["aweb"].netns, vms["adb"].ip, DB_PORT, 1.0) == "adb",
                 15, "acme web -> db on TCP 5432")
        # globex's web has acme web's address and reaches globex's db (proto any) only.
        assert tcp_read(vms["gweb"].netns, vms["gdb"].ip, DB_PORT) == "gdb"
        assert _udp_reaches(vms["gweb"].netns, vms["gdb"].ip, 9999)
        assert _udp_reaches(vms["aweb"].netns, vms["aapp"].ip, 8005)  # inside the range
        refused = [
            _udp_reaches(vms["aweb"].netns, vms["aapp"].ip, 8011),  # outside the range
            tcp_read(vms["adb"].netns, vms["aweb"].ip, DB_PORT, 1.0) == "aweb",  # reverse
            ping(vms["aweb"], vms["aapp"].ip, timeout=1.0),  # icmp not allowed web -> app
            ping(vms["adb"], vms["aapp"].ip, timeout=1.0),  # app -> db only, not db -> app
        ]
        assert refused == [False] * len(refused), refused
        assert ping(vms["aapp"], vms["adb"].ip, timeout=2.0)  # app -> db icmp
        assert not ping(vms["aweb"], "198.51.100.99", timeout=1.0)  # nobody's address
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_reloads_that_add_remove_and_break_rules_lose_no_packet_of_other_traffic(
        make_lab, write_topology, tmp_path):
    lab, policy = routed_lab(make_lab, write_topology, tmp_path)
    vms = lab.state().vms
    text = Path(EXAMPLE_POLICY).read_text()
    versions = [text.replace(TCP_RULE, ""), text, text + "\n  broken: [\n",
                text.replace(TCP_RULE, TCP_RULE + "      - allow: {from: db, to: web, "
                                                  "proto: udp, port: 53}\n"), text]
    count = math.ceil((2 * len(versions) + 4) / 0.02)
    streams = {dst: subprocess.Popen(
        ["ip", "netns", "exec", vms["web1"].netns, "ping", "-n", "-q", "-i", "0.02", "-c",
         str(count), "-w", str(int(count * 0.02) + 30), vms[dst].ip],
        stdout=subprocess.PIPE, text=True) for dst in ("web2", "db1")}  # L2, and routed ICMP
    try:
        time.sleep(1)
        for version in versions:
            policy.write_text(version)
            lab.controller_reload()
            time.sleep(2)  # the scenario: a reload every 2 s under the streams
        results = {dst: proc.communicate(timeout=count * 0.02 + 60)[0]
                   for dst, proc in streams.items()}
    finally:
        for proc in streams.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for dst, out in results.items():
        found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert found and found.group(1) == found.group(2), (dst, out)
    log = Path(lab.status()["controller"]["log"]).read_text()
    assert "policy reload refused" in log  # the broken version kept the running policy
