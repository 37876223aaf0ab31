"""A small, checked facade over ovsdbapp's Open_vSwitch API for one OVSDB server.

Every transaction raises on error (check_error=True): OVSDB failures are never swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl

LOG = logging.getLogger(__name__)


class OvsdbUnavailable(RuntimeError):
    """The OVSDB server could not be reached or did not answer in time."""


def _private_api_class() -> type[impl_idl.OvsdbIdl]:
    """ovsdbapp keeps its connection in a class attribute set once; a subclass per connection
    keeps each hypervisor's API on its own connection."""
    return type("PrivateOvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})


class VSwitch:
    """One connection to one hypervisor's OVSDB server, for short-lived tools."""

    def __init__(self, db: str, timeout: float = 10.0) -> None:
        self.db = db
        try:
            idl = connection.OvsdbIdl.from_server(db, "Open_vSwitch")
            self._conn = connection.Connection(idl=idl, timeout=timeout)
            self.api = _private_api_class()(self._conn)
        except Exception as exc:  # ovsdbapp raises several types for one cause
            raise OvsdbUnavailable(f"cannot reach OVSDB at {db}: {exc}") from exc

    def close(self) -> None:
        self._conn.stop()

    def __enter__(self) -> VSwitch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.api.transaction(check_error=True, log_errors=False) as txn:
            yield txn

    def system_ids(self) -> dict[str, str]:
        return dict(self.api.db_get("Open_vSwitch", ".", "external_ids").execute(check_error=True))

    def set_system_ids(self, ids: Mapping[str, str]) -> None:
        with self.transaction() as txn:
            for key, value in ids.items():
                txn.add(self.api.db_set("Open_vSwitch", ".", ("external_ids", {key: value})))

    def plug_vif(self, bridge: str, port: str, external_ids: Mapping[str, str]) -> None:
        """Add a VM port the way a hypervisor's VIF plugging does: port plus its contract ids."""
        with self.transaction() as txn:
            txn.add(self.api.add_port(bridge, port, may_exist=True))
            txn.add(self.api.db_set("Interface", port, ("external_ids", dict(external_ids))))

    def unplug(self, port: str) -> None:
        self.api.del_port(port, if_exists=True).execute(check_error=True)

    def interfaces(self) -> list[dict[str, Any]]:
        return list(
            self.api.db_list(
                "Interface", columns=["name", "type", "ofport", "external_ids", "options"]
            ).execute(check_error=True)
        )
