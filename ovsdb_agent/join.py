"""dove-join: make this hypervisor part of a ryu_dove overlay, or (--leave) take it out.

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
import time
from dataclasses import dataclass
from typing import Any

from ovsdb_agent import cli_args, contract
from ovsdb_agent.sockets import TlsFiles
from ovsdb_agent.vswitch import OvsdbUnavailable, VSwitch

LOG = logging.getLogger(__name__)

IDENTITY_KEYS = (contract.HYPERVISOR, contract.TEP_IP, contract.DATAPATH_TYPE)
# Between leave's two transactions; see leave() for why.
LEAVE_SETTLE_S = 1.0


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
        if _is_ours(row.external_ids) and row.target != req.manager_target:
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


def leave(vswitch: VSwitch, bridge: str = contract.INTEGRATION_BRIDGE) -> None:
    """Take this hypervisor out of the overlay for good; VM ports and the bridge stay.

    First its identity and the tunnel ports the controller made go, in one transaction, so
    that the controller, told through its manager session, forgets the hypervisor at once
    instead of waiting for its expiry. Then the controller and the managers dove-join set.
    Running it again changes nothing.
    """
    with vswitch.transaction() as txn:
        for command in _forget_commands(vswitch, bridge):
            txn.add(command)
    # The second transaction removes the manager, which closes the controller's OVSDB session:
    # give ovsdb-server time to deliver the first one's update on that session before, or the
    # controller sees only a lost connection and keeps the hypervisor until its expiry.
    time.sleep(LEAVE_SETTLE_S)
    with vswitch.transaction() as txn:
        for command in _disconnect_commands(vswitch, bridge):
            txn.add(command)


def _bridge_row(vswitch: VSwitch, bridge: str) -> Any | None:
    rows = vswitch.api.db_find_rows("Bridge", ("name", "=", bridge)).execute(check_error=True)
    return rows[0] if rows else None


def _forget_commands(vswitch: VSwitch, bridge: str) -> list[Any]:
    """Remove this hypervisor's identity and the bridge's owned tunnel ports."""
    api = vswitch.api
    commands = [api.db_remove("Open_vSwitch", ".", "external_ids", *IDENTITY_KEYS,
                              if_exists=True)]
    row = _bridge_row(vswitch, bridge)
    for port in row.ports if row is not None else []:
        if any(contract.is_owned_tunnel(i.external_ids) for i in port.interfaces):
            commands.append(api.del_port(port.name, bridge=bridge, if_exists=True))
    return commands


def _disconnect_commands(vswitch: VSwitch, bridge: str) -> list[Any]:
    """Remove the bridge's controllers (dove-join sets that list whole, on the bridge it
    marks as ours) and the managers dove-join marked; an operator's managers stay."""
    api = vswitch.api
    commands = []
    row = _bridge_row(vswitch, bridge)
    if row is not None and _is_ours(row.external_ids):
        commands += [api.db_remove("Bridge", bridge, "controller", ctl.uuid)
                     for ctl in row.controller]
    for manager in api.db_list_rows("Manager").execute(check_error=True):
        if _is_ours(manager.external_ids):
            commands += [api.db_remove("Open_vSwitch", ".", "manager_options", manager.uuid),
                         api.db_destroy("Manager", manager.uuid)]
    return commands


def _is_ours(external_ids: dict[str, str]) -> bool:
    return external_ids.get(contract.OWNER) == contract.OWNER_VALUE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dove-join", description=__doc__.splitlines()[0])
    p.add_argument("--leave", action="store_true",
                   help="leave the controller for good: remove this hypervisor's identity, "
                        "the controller's tunnel ports, the bridge's controller and dove-join's "
                        "manager (VM ports and the bridge stay); takes only --db and --bridge")
    p.add_argument("--controller", type=cli_args.ip_address,
                   help="management address of the DOVE controller (required unless --leave)")
    p.add_argument("--tep-ip", type=cli_args.tep_address,
                   help="underlay address of this hypervisor's VXLAN tunnel endpoint "
                        "(required unless --leave)")
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: joining needs the controller and the TEP, leaving takes
    neither (nor TLS files), and TLS takes all three files. Exits 2 with a message if not."""
    p = build_parser()
    args = p.parse_args(argv)
    join_only = {"--controller": args.controller, "--tep-ip": args.tep_ip,
                 "--ssl-key": args.ssl_key, "--ssl-cert": args.ssl_cert, "--ssl-ca": args.ssl_ca}
    if args.leave:
        given = [opt for opt, value in join_only.items() if value is not None]
        if given:
            p.error(f"--leave takes only --db and --bridge, not {', '.join(given)}")
        return args
    missing = [opt for opt in ("--controller", "--tep-ip") if join_only[opt] is None]
    if missing:
        p.error(f"joining needs {' and '.join(missing)} (or --leave to leave the controller)")
    files = (args.ssl_key, args.ssl_cert, args.ssl_ca)
    if any(files) and not all(files):
        p.error("TLS needs all of --ssl-key, --ssl-cert and --ssl-ca")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        with VSwitch(args.db) as vswitch:
            if args.leave:
                leave(vswitch, args.bridge)
                print(f"dove-join: left the controller: identity, tunnel ports, {args.bridge}'s "
                      "controller and dove-join's manager removed")
                return 0
            req = _join_request(args)
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


def _join_request(args: argparse.Namespace) -> JoinRequest:
    files = (args.ssl_key, args.ssl_cert, args.ssl_ca)
    ssl = TlsFiles(*(os.path.abspath(f) for f in files)) if all(files) else None
    return JoinRequest(controller=args.controller, tep_ip=args.tep_ip,
                       hypervisor=args.hypervisor, datapath_type=args.datapath_type,
                       bridge=args.bridge, ofp_port=args.ofp_port, ovsdb_port=args.ovsdb_port,
                       ssl=ssl)


if __name__ == "__main__":
    sys.exit(main())
