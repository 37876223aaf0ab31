"""A run's result as text: one summary per size and a table for a sweep, next to the bar.

The bar is OVN 23.03 in the same kind of lab with the same probes (from the issue).
"""

from __future__ import annotations

from typing import Any

OVN_CONVERGE_S = {2: 0.039, 4: 0.070, 8: 0.137, 16: 0.455}
OVN_FLOWS = (305, 418)
OVN_RSS_MB = 10.0  # per ovn-controller, i.e. per hypervisor
OVN_MIGRATE_S = (0.011, 0.036)
# Routed through a distributed router with Neutron-style security groups (issue 12).
OVN_ROUTED_S = {2: (0.056, 0.062), 4: (0.105, 0.117)}
OVN_ROUTED_FLOWS = (1305, 1387)


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.1f} ms"


def render(result: dict[str, Any]) -> str:
    h = result["hypervisors"]
    bar = OVN_CONVERGE_S.get(h)
    f, tl = result["flows_per_hv"], result["converge_timeline"]
    lines = [
        f"H={h} hypervisors, V={result['vms_per_hypervisor']} VMs each "
        f"({result['vms']} VMs, {result['same_network_pairs']} same-network pairs)",
        f"  converge_s        {ms(result['converge_s'])}"
        + (f"   (OVN 23.03: {bar * 1000:.0f} ms)" if bar else ""),
        f"    plug txns done  {ms(tl['plug_txn_done_s'])}; controller saw ports "
        f"{ms(tl['first_endpoint_s'])} .. {ms(tl['last_endpoint_s'])}; "
        f"{tl['bundles']} bundles (+{tl['flows_added']} flows) committed "
        f"{ms(tl['first_bundle_s'])} .. {ms(tl['last_bundle_s'])}; first replies "
        f"{ms(tl['first_reply_s'])} / median {ms(tl['median_reply_s'])} / "
        f"last {ms(tl['last_reply_s'])}",
        f"  leaks             {result['leaks']} "
        f"({result['cross_tenant']['probed']} cross-tenant pairs, "
        f"{result['cross_tenant']['echoes']} echoes; "
        f"{result['cross_tenant']['of_those_answered_in_own_network']}/"
        f"{result['cross_tenant']['address_exists_in_own_network']} whose address exists in "
        "the sender's network answered from there)",
        f"  add_vm_s          {ms(result['add_vm_s'])}",
        *_routed_lines(result),
        "  migrate_s         " + ", ".join(ms(x) for x in result["migrate_s"])
        + f"   (OVN: {OVN_MIGRATE_S[0] * 1000:.0f}-{OVN_MIGRATE_S[1] * 1000:.0f} ms)",
        "    pre-plugged     " + ", ".join(ms(x) for x in result["migrate_preplugged_s"])
        + "   (destination port plugged first, standing by until the old one goes)",
        "    live            " + ", ".join(ms(x) for x in result["migrate_live_s"])
        + "   (switch-over until active; 20 ms stream lost "
        + ", ".join(str(n) for n in result["migrate_live_lost"]) + " packets; target <= 1)",
        f"  flows_per_hv      mean {f['mean']}, max {f['max']}   "
        f"(OVN: {OVN_FLOWS[0]}-{OVN_FLOWS[1]})",
        *([f"  DISTURBED         other processes used {result['foreign_cpu_converge_s']} s "
           "CPU while it converged: " + "; ".join(result["foreign_busiest"])]
          if result["disturbed"] else []),
        f"  controller        {result['controller_cpu_s']} s CPU over the run "
        f"({result['controller_cpu_converge_s']} s while converging), "
        f"RSS {result['controller_rss_mb']} MiB (peak {result['controller_peak_rss_mb']} MiB)",
    ]
    return "\n".join(lines)


def _routed_lines(result: dict[str, Any]) -> list[str]:
    if "routed_converge_s" not in result:
        return []
    bar = OVN_ROUTED_S.get(result["hypervisors"])
    f = result["routed_flows_per_hv"]
    return [f"  routed_converge_s {ms(result['routed_converge_s'])}"
            + (f"   (OVN 23.03: {bar[0] * 1000:.0f}-{bar[1] * 1000:.0f} ms)" if bar else ""),
            f"  routed flows/hv   mean {f['mean']}, max {f['max']}   "
            f"(OVN with ACLs: {OVN_ROUTED_FLOWS[0]}-{OVN_ROUTED_FLOWS[1]})"]


def render_table(results: list[dict[str, Any]]) -> str:
    head = (f"{'H':>3} {'VMs':>4} {'converge':>9} {'OVN':>6} {'add_vm':>8} "
            f"{'migrate med/max':>16} {'pre-plugged':>11} {'live/lost':>12} {'flows/hv':>9} "
            f"{'ctl CPU':>8} "
            f"{'ctl RSS':>9} {'leaks':>5}")
    rows = [head]
    for r in results:
        bar = OVN_CONVERGE_S.get(r["hypervisors"])
        rows.append(
            f"{r['hypervisors']:>3} {r['vms']:>4} {r['converge_s'] * 1000:>7.1f}ms "
            f"{(f'{bar * 1000:.0f}ms' if bar else '-'):>6} {r['add_vm_s'] * 1000:>6.1f}ms "
            f"{r['migrate_s_median'] * 1000:>8.1f}/{r['migrate_s_max'] * 1000:>5.1f}ms "
            f"{r['migrate_preplugged_s_median'] * 1000:>9.1f}ms "
            f"{r['migrate_live_s_median'] * 1000:>7.1f}ms/{r['migrate_live_lost_max']:>2} "
            f"{r['flows_per_hv']['mean']:>9} {r['controller_cpu_s']:>7.2f}s "
            f"{r['controller_peak_rss_mb']:>6.1f}MiB {r['leaks']:>5}"
            + ("  (disturbed)" if r["disturbed"] else ""))
    return "\n".join(rows)


def render_machine(facts: dict[str, Any]) -> str:
    return (f"machine: {facts['cpu']}, {facts['nproc']} CPUs, kernel {facts['kernel']}, "
            f"{facts['ovs']}, Python {facts['python']}")
