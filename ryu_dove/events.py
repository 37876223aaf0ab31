"""What the engine is told: every event it handles, declared once.

Other threads post these (the OVSDB manager, the API, the policy reloader); the OpenFlow
transport, run by the engine's own thread, produces the switch events. The engine
(ryu_dove.engine.loop) handles them in batches on its thread, the owner of all state.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ovsdb_agent.reports import HypervisorReport
from ryu_dove.policy import Policy


class MessageKind(Enum):
    """The kinds of switch messages the engine acts on (the rest are not passed on)."""

    FLOW_STATS = "flow_stats"  # a part of the flow dump a reconciler asked for
    BUNDLE = "bundle"  # an ONF bundle reply (OPEN or COMMIT)
    BARRIER = "barrier"  # the end of a plain update
    ERROR = "error"  # the switch refused a message
    PACKET_IN = "packet_in"  # a punt: a packet a flow copied to the controller
    FLOW_REMOVED = "flow_removed"  # a flow with an idle timeout went unused that long


@dataclass(frozen=True)
class OvsdbReport:
    """A hypervisor's OVSDB state, whole, after any change to it."""

    report: HypervisorReport


@dataclass(frozen=True)
class OvsdbGone:
    """An OVSDB connection ended (`conn` names it, as in HypervisorReport.conn)."""

    conn: str


@dataclass(frozen=True)
class SwitchUp:
    """A switch finished its OpenFlow handshake; `dp` is the connection (its `id` the dpid)."""

    dp: Any


@dataclass(frozen=True)
class SwitchDown:
    dp: Any  # the connection that ended: a reconnected switch has a new one already


@dataclass(frozen=True)
class SwitchMessage:
    dpid: int
    kind: MessageKind
    msg: Any  # a ryu_dove.openflow.replies.Reply (its `datapath` is the connection)


@dataclass(frozen=True)
class NewPolicy:
    policy: Policy


@dataclass(frozen=True)
class PolicyRefused:
    """A reload found the policy files broken; the running policy stays (counted only)."""


@dataclass(frozen=True)
class ViewRequest:
    """The API asks what the controller knows (ryu_dove.northbound.views)."""

    reply: queue.Queue[dict[str, Any]]
    section: str | None = None  # one of views.SECTIONS; None: all of them


Event = (OvsdbReport | OvsdbGone | SwitchUp | SwitchDown | SwitchMessage | NewPolicy
         | PolicyRefused | ViewRequest)
