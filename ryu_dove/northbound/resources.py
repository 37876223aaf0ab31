"""The API's resources, declared once: each collection's name, item fields and filters.

The views (ryu_dove.northbound.views) build items from these fields, the API serves and
filters them, `dovectl show` takes its columns from them, and docs/api.md describes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Collection:
    """A list in the view, served at /v1/<name>."""

    name: str                    # view key and last path segment
    fields: tuple[str, ...]      # keys of each item, in display order (docs/api.md)
    filters: Mapping[str, str]   # query parameter -> item key it must equal

    @property
    def path(self) -> str:
        return f"/v1/{self.name}"


COLLECTIONS: tuple[Collection, ...] = (
    Collection("endpoints",
               ("network", "mac", "ips", "hypervisor", "port", "ofport", "iface_id",
                "addresses", "learned_at", "standby"),
               {"network": "network", "hypervisor": "hypervisor"}),
    Collection("hypervisors",
               ("name", "state", "tep_ip", "dpid", "ovsdb", "openflow", "last_heard",
                "flows_desired", "flows_installed", "in_sync", "foreign_flows",
                "flows_rejected"),
               {"hypervisor": "name"}),
    Collection("tunnels",
               ("hypervisor", "remote", "remote_ip", "port", "ofport"),
               {"hypervisor": "hypervisor"}),
    Collection("refused",
               ("hypervisor", "port", "iface_id", "reason"),
               {"hypervisor": "hypervisor"}),
)
BY_NAME: Mapping[str, Collection] = {c.name: c for c in COLLECTIONS}


def item(collection: str, *values: Any) -> dict[str, Any]:
    """One item of a collection, its values given in the declared field order."""
    fields = BY_NAME[collection].fields
    if len(values) != len(fields):
        raise ValueError(f"{collection} items have {len(fields)} fields, got {len(values)}")
    return dict(zip(fields, values, strict=True))
