"""Raw-ICMP reachability prober for lab VMs: first-reply times, with the responder checked.

One process probes every VM namespace of a lab: for each VM it opens two sockets *inside the
VM's network namespace* (on a short-lived thread that `setns`-es into it; a socket stays in
the namespace it was created in, whatever thread uses it later):

- an `AF_INET`/`SOCK_RAW`/`IPPROTO_ICMP` socket to send echo requests. The VM's own kernel
  routes them and resolves the destination with ARP, so the VM's ARP timers are part of what
  is measured; an `ICMP_FILTER` makes this socket receive nothing;
- an `AF_PACKET` socket bound to the VM's `eth0` that receives every IPv4 frame with the
  kernel's receive timestamp (`SO_TIMESTAMPNS`), so a reply is seen with its Ethernet source.

A reply counts for the pair (src VM, dst VM) only if it arrives on src's `eth0`, is an ICMP
echo reply with the identifier and a sequence number this prober sent for that pair (and the
run's nonce in the payload), comes from dst's IP address *and* dst's MAC address and, when
dst names one, carries dst's IP TTL (used to tell a migrated VM's new incarnation from the
old one: same MAC, same IP, different `net.ipv4.ip_default_ttl`). A reply to one of our
echoes whose Ethernet source is a VM of another network than the sender's (or no known VM)
is recorded as a leak: isolation is broken. A reply from another VM of the sender's own
network (overlapping addresses: the address exists in both tenants) is counted as neither.

Sessions: `until_answered(pairs)` sends one echo per still-unanswered pair every `interval`
(20 ms) and is done when every pair has had its first reply; `window(pairs, count)` sends
`count` echoes per pair and is done `linger` seconds after the last one (to prove silence).
All times are `time.monotonic()` seconds (kernel timestamps are mapped onto that clock).

As a tool: `python -m benchmarks.probe_icmp --netns NS [--mac MAC] DST_IP...` prints the
first-reply time of each destination as JSON (run as root).

Modules: `prober` (the thread: sending, receiving, classifying replies), `session` (pairs
and their sessions), `netns` (sockets inside a namespace), `packets` (echo requests),
`base` (the interval, the error, VMs, leaks), `cli` (the tool).
"""

# Names the convergence benchmark imports from here.
from benchmarks.probe_icmp.base import INTERVAL_S, Leak, ProbeError, ProbeVm
from benchmarks.probe_icmp.prober import IcmpProber
from benchmarks.probe_icmp.session import Session

__all__ = ["INTERVAL_S", "IcmpProber", "Leak", "ProbeError", "ProbeVm", "Session"]
