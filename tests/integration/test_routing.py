"""Routing between a tenant's networks by its rules, statefully, on real OVS (issue 12).

policies/example.yaml lets acme/web open TCP 5432 and ICMP to acme/db; nothing else crosses
networks, and db cannot open anything towards web. web VMs on two hypervisors, one of them
beside the db VM; globex has a VM at web1's very address.
"""

from __future__ import annotations

from dove_lab.probe import Fate, ping
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


def test_web_reaches_db_by_the_rules_and_nothing_else_crosses(make_lab, write_topology):
    lab = make_lab(write_topology(ROUTED), controller=True)
    wait_in_sync(lab)
    vms = lab.state().vms
    for web in ("web1", "web2"):  # across hypervisors, and beside db1
        wait_for(lambda web=web: fate(lab, web, "db1", timeout=1.0) is Fate.REACHES, 10,
                 f"{web} to ping db1 (routed)")
    assert not ping(vms["db1"], vms["web1"].ip, timeout=1.0)  # db cannot open towards web
    assert not ping(vms["gx1"], vms["db1"].ip, timeout=1.0)  # another tenant: never routed
    servers = [tcp_name_server(vms["db1"].netns, "db1", port) for port in (DB_PORT, OTHER_PORT)]
    servers.append(tcp_name_server(vms["web1"].netns, "web1", DB_PORT))
    try:
        for web in ("web1", "web2"):
            assert tcp_read(vms[web].netns, vms["db1"].ip, DB_PORT) == "db1", web
            assert tcp_read(vms[web].netns, vms["db1"].ip, OTHER_PORT, timeout=2.0) == "", web
        assert tcp_read(vms["db1"].netns, vms["web1"].ip, DB_PORT, timeout=2.0) == ""
    finally:
        for server in servers:
            server.kill()
            server.wait()
