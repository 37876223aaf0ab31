"""A fleet of fake OpenFlow 1.3 switches in one asyncio process, for benchmarks.scale.

Why it exists: a thousand ovs-vswitchd do not fit on one machine, and os-ken's own message
classes cost tens of microseconds a message, too slow to stand in for thousands of switches.
So each fake switch speaks only what the controller's handshake and reconciler need, with
`struct` on raw headers: HELLO, FEATURES_REPLY (a distinct datapath id per switch), empty
PORT_DESC and FLOW multipart replies (a cold start: nothing installed), ECHO and BARRIER
replies, and ONF bundle control replies (OPEN/COMMIT/... with the request's bundle id and
xid). Flow-mods, inside BUNDLE_ADD or plain, are counted, never applied; a barrier after
plain flow-mods counts as that update's commit. No packets are processed.

What it measures, with time.monotonic() (CLOCK_MONOTONIC is system-wide, so the times
compare with the benchmark process's): per switch its connect, handshake and commit times
and its flow-mods; per tracked MAC, when a flow-mod matching eth_dst=MAC reached each switch
and when the bundle (or barrier) that completed it was answered.

Driven by JSON lines on stdin, answered by JSON lines on stdout (nothing else is printed
there). Commands, each answered once:
    {"op": "connect", "within": S}             -> {"op": "connecting", "t0"}; every switch
                                      connects at once, retrying as OVS does for S seconds
    {"op": "track", "macs": {MAC: switches}}   -> {"op": "tracking", "macs", "pairs"}
    {"op": "wait", "timeout": S, "all_committed": B} -> {"op": "waited", "done", ...}
    {"op": "report", "detail": B}  -> {"op": "switch", ...} per switch, {"op": "macs", ...},
                                      {"op": "reported"}; per-phase counters restart
    {"op": "macs"}                 -> {"op": "macs", "macs": {MAC: [last add, last commit, n]}}
    {"op": "quit"}                             -> (exits; so does end of input)
`wait` ends when every tracked MAC reached as many switches as asked, no bundle is open and
(with all_committed) every switch committed at least once, or when the timeout passes.

Modules: `cli` (the process, its command loop), `fleet` (the switches together, the
commands, reconnecting), `switch` (one connection), `tracker` (the tracked MACs), `wire`
(OpenFlow layouts and replies).
"""

# Names the tests use (tests/unit/test_fake_fleet.py).
from benchmarks.fake_fleet.fleet import Fleet
from benchmarks.fake_fleet.switch import SimulatedSwitch
from benchmarks.fake_fleet.tracker import Tracker
from benchmarks.fake_fleet.wire import eth_dst, hello, mac_bytes

__all__ = ["Fleet", "SimulatedSwitch", "Tracker", "eth_dst", "hello", "mac_bytes"]
