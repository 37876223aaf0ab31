"""Sample API records (docs/api.md's shapes) shared by the API and dovectl tests."""

from __future__ import annotations

HV1 = {"name": "hv1", "state": "connected", "tep_ip": "192.0.2.1", "dpid": "0000a2b3c4d5e6f7",
       "ovsdb": True, "openflow": True, "last_heard": "2026-12-04T19:00:00Z",
       "flows_desired": 40, "flows_installed": 40, "in_sync": True, "foreign_flows": 0,
       "flows_rejected": 0}
HV2 = {**HV1, "name": "hv2", "state": "degraded", "tep_ip": "192.0.2.2", "dpid": None,
       "openflow": False, "flows_installed": 0, "in_sync": False}
TUN12 = {"hypervisor": "hv1", "remote": "hv2", "remote_ip": "192.0.2.2", "port": "dv-c0000202",
         "ofport": 5}
TUN21 = {"hypervisor": "hv2", "remote": "hv1", "remote_ip": "192.0.2.1", "port": "dv-c0000201",
         "ofport": 6}
REFUSED = {"hypervisor": "hv1", "port": "vif-x", "iface_id": "x",
           "reason": "unknown network 'acme/nope'"}
