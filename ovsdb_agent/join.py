"""dove-join: make this hypervisor part of a ryu_dove overlay.

Creates the integration bridge in fail-mode secure (no traffic passes until the controller
programs it), records the tunnel endpoint address, and points OpenFlow and OVSDB management
at the controller. Running it again with the same arguments changes nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from ovsdb_agent import cli_args, contract
from ovsdb_agent.sockets import TlsFiles
from ovsdb_agent.vswitch import OvsdbUnavailable, VSwitch

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class JoinRequest:
    controller: str  # an IP address; ports come from ofp_port / ovsdb_port
    tep_ip: str
    hypervisor: str
    datapath_type: str = "system"
    bridge: str = contract.INTEGRATION_BRIDGE
    ofp_port: int = contract.OFP_PORT
    ovsdb_port: int = contract.OVSDB_PORT
    ssl: TlsFiles | None = None  # this hypervisor's key and certificate, the controller's CA

    @property
    def controller_target(self) -> str:
        return f"{self._kind}:{_host(self.controller)}:{self.ofp_port}"

    @property
    def manager_target(self) -> str:
        return f"{self._kind}:{_host(self.controller)}:{self.ovsdb_port}"

    @property
    def _kind(self) -> str:
        return "tcp" if self.ssl is None else "ssl"


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def join(vswitch: VSwitch, req: JoinRequest) -> None:
    """Apply the join: one OVSDB transaction sets the bridge, its controller, the manager and
    this hypervisor's identity; a second one marks the rows the first one created."""
    api = vswitch.api
    if req.ssl is not None:
        _set_ssl(vswitch, req.ssl)
    managers = api.db_list_rows("Manager").execute(check_error=True)
    have_controller = _has_controller(vswitch, req)
    with vswitch.transaction() as txn:
        for command in (*_bridge_commands(vswitch, req, have_controller),
                        *_manager_commands(vswitch, req, managers),
                        _identity_command(vswitch, req)):
            txn.add(command)
    _mark_created_rows(vswitch, req)


def _set_ssl(vswitch: VSwitch, files: TlsFiles) -> None:
    """The key, certificate and CA both ovs-vswitchd (controller) and ovsdb-server (manager,
    started with its SSL options from the database, as Debian's ovs-ctl does) use. Through
    ovs-vsctl: ovsdbapp has no SSL command, and the SSL row must be created and referenced
    in one transaction (an unreferenced one is garbage-collected)."""
    for path in (files.key, files.cert, files.ca):
        if not os.access(path, os.R_OK):
            raise OvsdbUnavailable(f"cannot read {path}")
    proc = subprocess.run(["ovs-vsctl", f"--db={vswitch.db}", "set-ssl", files.key, files.cert,
                           files.ca], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OvsdbUnavailable(f"ovs-vsctl set-ssl failed: {proc.stderr.strip()}")


def _owned() -> dict[str, str]:
    return {contract.OWNER: contract.OWNER_VALUE}


def _has_controller(vswitch: VSwitch, req: JoinRequest) -> bool:
    """Whether the bridge has our controller already: re-setting an unchanged controller
    would drop and re-open the OpenFlow connection."""
    api = vswitch.api
    return bool(api.br_exists(req.bridge).execute(check_error=True) and api.get_controller(
        req.bridge).execute(check_error=True) == [req.controller_target])


def _bridge_commands(vswitch: VSwitch, req: JoinRequest, have_controller: bool) -> list[Any]:
    api = vswitch.api
    commands = [
        api.add_br(req.bridge, may_exist=True, datapath_type=req.datapath_type),
        api.db_set("Bridge", req.bridge,
                   ("datapath_type", req.datapath_type),
                   ("fail_mode", "secure"),
                   ("protocols", ["OpenFlow13", "OpenFlow15"]),
                   ("other_config", {"disable-in-band": "true"}),
                   ("external_ids", _owned())),
    ]
    if not have_controller:
        commands.append(api.set_controller(req.bridge, [req.controller_target]))
    return commands


def _manager_commands(vswitch: VSwitch, req: JoinRequest, managers: list[Any]) -> list[Any]:
    """Our manager target, and away with the managers we set before for another target."""
    api = vswitch.api
    commands = []
    for row in managers:
        if (row.external_ids.get(contract.OWNER) == contract.OWNER_VALUE
                and row.target != req.manager_target):
            commands += [api.db_remove("Open_vSwitch", ".", "manager_options", row.uuid),
                         api.db_destroy("Manager", row.uuid)]
    if not any(row.target == req.manager_target for row in managers):
        commands.append(api.add_manager(req.manager_target))
    return commands


def _identity_command(vswitch: VSwitch, req: JoinRequest) -> Any:
    return vswitch.api.db_set("Open_vSwitch", ".", ("external_ids", {
        contract.HYPERVISOR: req.hypervisor,
        contract.TEP_IP: req.tep_ip,
        contract.DATAPATH_TYPE: req.datapath_type,
    }))


def _mark_created_rows(vswitch: VSwitch, req: JoinRequest) -> None:
    """Second step: rows created by the first are now addressable. Out-of-band control
    because the controller is reached over the management network, never through br-int."""
    api = vswitch.api
    bridge = api.db_find_rows("Bridge", ("name", "=", req.bridge)).execute(check_error=True)[0]
    manager = api.db_find_rows("Manager", ("target", "=", req.manager_target)).execute(
        check_error=True)[0]
    with vswitch.transaction() as txn:
        for ctl in bridge.controller:
            txn.add(api.db_set("Controller", ctl.uuid, ("connection_mode", "out-of-band")))
        txn.add(api.db_set("Manager", manager.uuid, ("external_ids", _owned())))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dove-join", description=__doc__.splitlines()[0])
    p.add_argument("--controller", required=True, type=cli_args.ip_address,
                   help="management address of the DOVE controller")
    p.add_argument("--tep-ip", required=True, type=cli_args.tep_address,
                   help="underlay address of this hypervisor's VXLAN tunnel endpoint")
    p.add_argument("--hypervisor", default=socket.gethostname(), type=cli_args.hypervisor_name,
                   help="this hypervisor's name in the overlay (default: hostname; 1-63 "
                        "letters, digits, '.', '_', '-')")
    p.add_argument("--datapath-type", choices=["system", "netdev"], default="system",
                   help="system on a real hypervisor, netdev for the userspace datapath")
    p.add_argument("--db", default=contract.DEFAULT_DB, help="OVSDB server (default: %(default)s)")
    p.add_argument("--bridge", default=contract.INTEGRATION_BRIDGE)
    p.add_argument("--ofp-port", type=cli_args.tcp_port, default=contract.OFP_PORT)
    p.add_argument("--ovsdb-port", type=cli_args.tcp_port, default=contract.OVSDB_PORT)
    p.add_argument("--ssl-key", help="this hypervisor's private key: OpenFlow and OVSDB to "
                   "the controller over mutual TLS (its certificate's name must be --hypervisor)")
    p.add_argument("--ssl-cert", help="this hypervisor's certificate (ovs-pki switchca)")
    p.add_argument("--ssl-ca", help="the CA the controller's certificate chains to "
                   "(ovs-pki controllerca/cacert.pem)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    files = (args.ssl_key, args.ssl_cert, args.ssl_ca)
    if any(files) and not all(files):
        print("dove-join: TLS needs all of --ssl-key, --ssl-cert and --ssl-ca", file=sys.stderr)
        return 2
    ssl = TlsFiles(*(os.path.abspath(f) for f in files)) if all(files) else None
    req = JoinRequest(controller=args.controller, tep_ip=args.tep_ip, hypervisor=args.hypervisor,
                      datapath_type=args.datapath_type, bridge=args.bridge,
                      ofp_port=args.ofp_port, ovsdb_port=args.ovsdb_port, ssl=ssl)
    try:
        with VSwitch(args.db) as vswitch:
            join(vswitch, req)
    except OvsdbUnavailable as exc:
        print(f"dove-join: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"dove-join: OVSDB refused the change: {exc}", file=sys.stderr)
        return 1
    print(f"dove-join: {req.hypervisor} joined: {req.bridge} -> {req.controller_target}, "
          f"manager {req.manager_target}, TEP {req.tep_ip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
