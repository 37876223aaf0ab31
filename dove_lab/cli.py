"""dove-lab: build and drive a multi-hypervisor ryu_dove lab on one machine."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

from dove_lab import partitions, probe
from dove_lab.lab import Lab, LabError
from dove_lab.naming import DEFAULT_LAB, check_lab_name
from dove_lab.shell import CommandFailed
from dove_lab.topology import load_topology
from ovsdb_agent import cli_args, contract
from ryu_dove.policy import load_policy
from ryu_dove.policy.yamlmarks import ConfigError


def _lab_name(text: str) -> str:
    try:
        return check_lab_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_up(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    topology = load_topology(args.topology, policy)
    lab = Lab(args.name)
    lab.up(topology, args.policy, policy, controller=not args.no_controller,
           connect_timeout=args.timeout, controller_args=args.controller_arg,
           tls=not args.plaintext, osken_manager=args.osken_manager or "")
    status = lab.status()
    print(f"lab {args.name} is up ({status['mode']}): {len(status['hypervisors'])} hypervisors, "
          f"{len(status['vms'])} VMs; state in {status['dir']}")
    if not args.no_controller:
        print(f"controller {status['controller']['address']}, log {status['controller']['log']}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    removed = Lab(args.name).down()
    print(f"lab {args.name}: " + (f"removed {len(removed)} items" if removed else "nothing to do"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(Lab(args.name).status(), indent=2))
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    lab = Lab(args.name)
    state = lab.state()
    src = state.vms.get(args.src)
    if src is None:
        raise LabError(f"no VM {args.src!r} in lab {args.name!r}")
    dst_ip = state.vms[args.dst].ip if args.dst in state.vms else args.dst
    ok = probe.ping(src, dst_ip, count=args.count, timeout=args.timeout)
    print(f"{args.src} -> {args.dst} ({dst_ip}): {'reaches' if ok else 'no reply'}")
    return 0 if ok else 1


def cmd_matrix(args: argparse.Namespace) -> int:
    state = Lab(args.name).state()
    probes = probe.matrix(state, timeout=args.timeout)
    if args.json:
        out: dict[str, dict[str, str]] = {}
        for p in probes:
            out.setdefault(p.src, {})[p.dst] = p.fate.value
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(probe.render_matrix(state, probes))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    netns = Lab(args.name).node_netns(args.node)
    argv = [a for a in args.command if a != "--"] if args.command[:1] == ["--"] else args.command
    if not argv:
        raise LabError("nothing to run: dove-lab exec NODE -- CMD...")
    os.execvp("ip", ["ip", "netns", "exec", netns, *argv])
    return 127  # not reached


def cmd_add_vm(args: argparse.Namespace) -> int:
    vm = Lab(args.name).add_vm(args.vm, args.hypervisor, args.network, args.ip, args.mac,
                               libvirt=args.libvirt, iface_id=args.iface_id or "",
                               learn=args.learn)
    how = f" as libvirt does (iface-id {vm.iface_id or vm.name})" if args.libvirt else (
        " without dove-ips (its address is learned)" if args.learn else "")
    print(f"VM {vm.name} ({vm.network} {vm.ip} {vm.mac}) plugged on {vm.hypervisor}{how}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    waits = Lab(args.name).migrate_vm(args.vm, args.to)
    standby, active = waits["standby_s"], waits["active_s"]
    done = "" if standby is None or active is None else (
        f": standing by after {standby * 1000:.0f} ms, active {active * 1000:.0f} ms after "
        "the switch-over")
    print(f"VM {args.vm} migrated to {args.to}{done}")
    return 0


def cmd_plug_host(args: argparse.Namespace) -> int:
    from dove_lab.host_vms import plug_host
    made = plug_host(args.topology, args.policy, args.hypervisor, args.db, args.prefix)
    for vm in made:
        print(f"VM {vm.name} ({vm.network} {vm.ip} {vm.mac}) plugged in namespace {vm.netns}")
    if not made:
        print(f"no new VM for {args.hypervisor} in {args.topology}")
    return 0


def cmd_del_vm(args: argparse.Namespace) -> int:
    Lab(args.name).del_vm(args.vm)
    print(f"VM {args.vm} unplugged and removed")
    return 0


def cmd_add_hv(args: argparse.Namespace) -> int:
    hv = Lab(args.name).add_hypervisor(args.hypervisor)
    print(f"hypervisor {hv.name} joined (TEP {hv.tep_ip}, management {hv.mgmt_ip})")
    return 0


def cmd_del_hv(args: argparse.Namespace) -> int:
    gone = Lab(args.name).del_hypervisor(args.hypervisor)
    with_vms = f" with VMs {', '.join(gone)}" if gone else ""
    print(f"hypervisor {args.hypervisor} removed{with_vms}")
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    lab = Lab(args.name)
    if args.cmd == "partition":
        changed = lab.partition(args.hypervisor, args.channel)
    else:
        changed = lab.heal(args.hypervisor, args.channel)
    now = lab.state().hypervisors[args.hypervisor].partitioned
    print(partitions.describe(args.hypervisor, args.cmd, args.channel, changed, now))
    return 0


def cmd_controller(args: argparse.Namespace) -> int:
    lab = Lab(args.name)
    if args.action in ("stop", "kill", "restart"):
        was = lab.controller_stop(kill=args.action == "kill")
        if args.action != "restart":
            print(f"controller {'stopped' if was else 'was not running'}")
    if args.action == "reload":
        lab.controller_reload()
        print("controller asked to reload its policy (SIGHUP); its log says how it went")
    if args.action in ("start", "restart"):
        pid = lab.controller_start(timeout=args.timeout)
        print(f"controller running (pid {pid}); every hypervisor connected and in sync")
    return 0


Command = Callable[[argparse.Namespace], int]
# Adds a sub-command: its name, the function that runs it, its help; returns its parser.
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]


def _lifecycle_commands(add: AddCommand) -> None:
    up = add("up", cmd_up, "bring a lab up from a topology and a policy")
    up.add_argument("--topology", required=True)
    up.add_argument("--policy", required=True, action="append",
                    help="policy file or directory (repeatable)")
    up.add_argument("--plaintext", action="store_true",
                    help="OpenFlow and OVSDB without TLS (by default the lab makes a PKI "
                         "with ovs-pki and every channel is mutual TLS)")
    up.add_argument("--no-controller", action="store_true",
                    help="baseline: plain OVS bridging over a tunnel mesh, no isolation")
    up.add_argument("--timeout", type=cli_args.positive_number, default=30.0,
                    help="seconds to wait for every hypervisor to connect (default 30)")
    up.add_argument("--controller-arg", action="append", default=[], metavar="ARG",
                    help="extra dove-controller option, e.g. --controller-arg=--echo-interval=1 "
                         "(repeatable)")
    up.add_argument("--osken-manager", metavar="PATH",
                    help="launch the controller with this os-ken 3.1 osken-manager (its venv "
                         "has ryu_dove installed) instead of dove-controller")
    add("down", cmd_down, "remove everything the lab created")
    add("status", cmd_status, "the lab as JSON")


def _probe_commands(add: AddCommand) -> None:
    ping = add("ping", cmd_ping, "exit 0 iff VM SRC gets replies from DST (VM name or IP)")
    ping.add_argument("src")
    ping.add_argument("dst")
    ping.add_argument("--count", type=int, default=1)
    ping.add_argument("--timeout", type=cli_args.positive_number, default=3.0)
    matrix = add("matrix", cmd_matrix, "ping every VM pair and print who reaches whom")
    matrix.add_argument("--json", action="store_true")
    matrix.add_argument("--timeout", type=cli_args.positive_number, default=3.0)
    ex = add("exec", cmd_exec, "run a command in a VM's or hypervisor's namespace")
    ex.add_argument("node")
    ex.add_argument("command", nargs=argparse.REMAINDER)


def _node_commands(add: AddCommand) -> None:
    av = add("add-vm", cmd_add_vm, "plug a new VM into a running lab")
    av.add_argument("vm")
    av.add_argument("--hypervisor", required=True)
    av.add_argument("--network", required=True, help="tenant/network")
    av.add_argument("--ip", required=True)
    av.add_argument("--mac")
    av.add_argument("--libvirt", action="store_true",
                    help="plug the port exactly as libvirt does: iface-id, attached-mac, "
                         "iface-status and vm-id only; a port mapping in the policy binds it")
    av.add_argument("--learn", action="store_true",
                    help="plug with network and MAC but no dove-ips: the controller learns "
                         "the address the VM uses (--ip still configures it inside)")
    av.add_argument("--iface-id", help="the port's iface-id (default: the VM's name)")
    add("del-vm", cmd_del_vm, "unplug and remove a VM").add_argument("vm")
    ph = add("plug-host", cmd_plug_host, "on a real hypervisor (a Vagrant VM): plug the VMs a "
             "topology puts on it, as namespaces on its br-int (docs/vagrant.md)")
    ph.add_argument("--topology", required=True)
    ph.add_argument("--policy", required=True, action="append")
    ph.add_argument("--hypervisor", required=True, help="this host's name in the topology")
    ph.add_argument("--db", default=contract.DEFAULT_DB, help="its OVSDB (default: %(default)s)")
    ph.add_argument("--prefix", default="dove-vm-", help="of the VM namespaces' names")
    mv = add("migrate", cmd_migrate, "live-migrate a VM to another hypervisor (docs/migration.md)")
    mv.add_argument("vm")
    mv.add_argument("--to", required=True, metavar="HYPERVISOR")
    add("add-hypervisor", cmd_add_hv, "add and join a hypervisor").add_argument("hypervisor")
    add("del-hypervisor", cmd_del_hv, "the hypervisor leaves the controller (dove-join --leave), "
        "then it, its VMs and its OVS database are removed").add_argument("hypervisor")


def _partition_commands(add: AddCommand) -> None:
    for name, help_ in (
            ("partition", "cut a hypervisor off the controller: all (its management link) or "
                          "one channel (openflow, ovsdb: dropped both ways with nftables)"),
            ("heal", "undo partition of that channel (all, the default: the management link); "
                     "other cuts stay")):
        sp = add(name, cmd_partition, help_)
        sp.add_argument("hypervisor")
        sp.add_argument("--channel", choices=partitions.CHOICES, default=partitions.ALL,
                        help="default: %(default)s")


def _controller_commands(add: AddCommand) -> None:
    ctl = add("controller", cmd_controller,
              "start, stop, kill (SIGKILL), restart the controller, or reload its policy")
    ctl.add_argument("action", choices=["start", "stop", "kill", "restart", "reload"])
    ctl.add_argument("--timeout", type=cli_args.positive_number, default=30.0)


# The sub-command groups, in the order `dove-lab --help` lists them.
_GROUPS: tuple[Callable[[AddCommand], None], ...] = (
    _lifecycle_commands,
    _probe_commands,
    _node_commands,
    _partition_commands,
    _controller_commands,
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", type=_lab_name, default=DEFAULT_LAB,
                        help="lab name, 1-8 lowercase letters or digits (default: %(default)s)")
    p = argparse.ArgumentParser(prog="dove-lab", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name: str, fn: Command, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    for group in _GROUPS:
        group(add)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except (LabError, CommandFailed) as exc:
        print(f"dove-lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dove-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
