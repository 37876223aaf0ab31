"""OUT_TUNNEL: a remote hypervisor's key (REG_REMOTE) to this switch's tunnel port to it."""

from __future__ import annotations

from functools import lru_cache

from ryu_dove.directory import Directory, Endpoint
from ryu_dove.pipeline.flows import FlowMap, Output, flow
from ryu_dove.pipeline.parts.common import MEMO, P_NORMAL, checked
from ryu_dove.pipeline.stages import REG_REMOTE, Stage
from ryu_dove.tunnel_ids import remote_key


@lru_cache(maxsize=MEMO)
def to_tunnel(rkey: int, ofport: int) -> FlowMap:
    return checked([flow(Stage.OUT_TUNNEL, P_NORMAL, {REG_REMOTE: rkey}, [Output(ofport)])])


def host_keys(members: tuple[Endpoint, ...], directory: Directory) -> tuple[tuple[str, int], ...]:
    """Each hypervisor hosting these members, with the key flows name it by."""
    keys = {}
    for ep in members:
        if ep.hypervisor not in keys:
            hv = directory.hypervisor(ep.hypervisor)
            if hv is not None:
                keys[ep.hypervisor] = remote_key(hv.tep_ip)
    return tuple(sorted(keys.items()))
