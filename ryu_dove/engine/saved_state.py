"""Each hypervisor's last known state, kept on disk so that a restart changes nothing.

A controller restarted while a hypervisor is unreachable (a partition, its management link
down) must keep every flow and tunnel towards it: the hypervisor's VMs still run and the
underlay may still carry their traffic. So the engine writes, for each hypervisor, what its
peers' flows and tunnels towards it are computed from: its name, TEP, datapath id and VM
ports (as reported, so the endpoints are re-judged under the policy of the day). After a
restart these records are loaded as *stale*: used as if reported, shown as stale in the API,
and replaced by the first real report. Its own tunnel ports are not kept (at a thousand
hypervisors they were 99% of a record: 180 KB each, 5 ms of encoding a write): the switch of
a stale hypervisor is not programmed until its OVSDB has reported them again.

One file per hypervisor (`<dir>/hypervisors/<name>.json`): a change rewrites only the
hypervisor it touched, and a damaged file costs one hypervisor, not the fleet. Files are
written by a thread of their own (JSON encoding is not the engine's job), each to a
temporary name, flushed to disk and renamed over the old one, so a crash leaves the old or
the new file, never half of one.

Everything read back is checked as strictly as an OVSDB report (the file may have been
edited, truncated or planted): a file that does not parse is logged, renamed to `*.bad` for
inspection and skipped; the hypervisor is then unknown until it reports, as on a first start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovsdb_agent import contract
from ovsdb_agent.reports import HypervisorReport, PortInfo

LOG = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/ryu_dove"
FORMAT = "ryu_dove-hypervisor"
VERSION = 1
MAX_FILE = 64 << 20  # bytes; a thousand VM ports take ~0.3 MB
MAX_FILES = 100_000
MAX_PORTS = 200_000
MAX_TEXT = 4096  # characters in any one name, key or value
SAVE_EVERY_S = 1.0  # at most one round of writes this often: a burst of reports is one write
SAVED_CONN = "saved-state"  # the `conn` of a report rebuilt from a file: no connection


Record = Callable[[], bytes]  # a hypervisor's file contents, encoded when written


class SavedStateError(ValueError):
    """A record that cannot be trusted; the message says which field and why."""


@dataclass(frozen=True)
class SavedHypervisor:
    report: HypervisorReport  # conn is SAVED_CONN
    last_heard: float  # Unix time the controller last heard from it


# --- encoding -------------------------------------------------------------------------------

def encode(report: HypervisorReport, vm_ports: Iterable[PortInfo], last_heard: float) -> bytes:
    """One hypervisor's record as the bytes of its file."""
    doc = {
        "format": FORMAT, "version": VERSION, "name": report.name, "tep_ip": report.tep_ip,
        "datapath_type": report.datapath_type, "dpid": report.dpid,
        "last_heard": round(last_heard, 3),
        "ports": [_port(p) for p in vm_ports],
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _port(p: PortInfo) -> dict[str, Any]:
    return {"name": p.name, "ofport": p.ofport, "type": p.type,
            "external_ids": dict(p.external_ids), "options": dict(p.options), "error": p.error}


# --- decoding: total, nothing trusted ------------------------------------------------------

def decode(data: bytes) -> SavedHypervisor:
    """A record from a file's bytes; SavedStateError says what is wrong."""
    if len(data) > MAX_FILE:
        raise SavedStateError(f"larger than {MAX_FILE} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SavedStateError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SavedStateError("not a JSON object")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise SavedStateError(f"not a {FORMAT} record of version {VERSION}")
    name, tep = _text(doc, "name"), _text(doc, "tep_ip")
    why = contract.name_problem(name) or contract.tep_problem(tep)
    if why:
        raise SavedStateError(why)
    ports = doc.get("ports")
    if not isinstance(ports, list) or len(ports) > MAX_PORTS:
        raise SavedStateError(f"ports: a list of at most {MAX_PORTS}")
    decoded = tuple(sorted((_decode_port(p, i) for i, p in enumerate(ports)),
                           key=lambda p: p.name))
    if len({p.name for p in decoded}) != len(decoded):
        raise SavedStateError("ports: a port name appears twice")
    report = HypervisorReport(SAVED_CONN, name, tep, _optional_text(doc, "datapath_type"),
                              _dpid(doc.get("dpid")), decoded)
    return SavedHypervisor(report, _time(doc.get("last_heard")))


def _decode_port(p: Any, index: int) -> PortInfo:
    where = f"ports[{index}]"
    if not isinstance(p, dict):
        raise SavedStateError(f"{where}: not an object")
    ofport = p.get("ofport")
    if ofport is not None and (type(ofport) is not int or not -1 <= ofport <= 0xFFFF_FFFF):
        raise SavedStateError(f"{where}.ofport: not an OpenFlow port number")
    return PortInfo(_text(p, "name", where), ofport, _text(p, "type", where, empty=True),
                    _pairs(p.get("external_ids"), f"{where}.external_ids"),
                    _pairs(p.get("options"), f"{where}.options"),
                    _optional_text(p, "error", where))


def _text(doc: dict[str, Any], key: str, where: str = "", empty: bool = False) -> str:
    value = doc.get(key)
    if (not isinstance(value, str) or len(value) > MAX_TEXT or (not value and not empty)
            or "\0" in value):
        raise SavedStateError(f"{where + '.' if where else ''}{key}: not a valid string")
    return value


def _optional_text(doc: dict[str, Any], key: str, where: str = "") -> str | None:
    return None if doc.get(key) is None else _text(doc, key, where, empty=True)


def _pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or len(value) > 256:
        raise SavedStateError(f"{where}: an object of at most 256 strings")
    for k, v in value.items():
        if not isinstance(v, str) or len(k) > MAX_TEXT or len(v) > MAX_TEXT:
            raise SavedStateError(f"{where}: {k[:40]!r} is not a short string")
    return tuple(sorted(value.items()))


def _dpid(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise SavedStateError("dpid: not a 64-bit datapath id")
    return value


def _time(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise SavedStateError("last_heard: not a Unix time")
    return float(value)


# --- the directory of files ------------------------------------------------------------------

class SavedState:
    """The files in `<root>/hypervisors/`, and the thread that writes them."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.dir = Path(root) / "hypervisors"
        self._pending: dict[str, Record | None] = {}  # name -> new contents; None: delete
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0
        self.failures = 0

    def prepare(self) -> None:
        """Create the directory; OSError (e.g. no permission) says the controller cannot
        keep its state, which it refuses to start without."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = self.dir / ".writable"
        probe.write_bytes(b"")
        probe.unlink()

    def problem(self) -> str | None:
        """prepare(), with what went wrong as a sentence (for the command line's checks)."""
        try:
            self.prepare()
        except OSError as exc:
            return f"cannot keep state in {self.dir.parent}: {exc.strerror or exc}"
        return None

    def load(self) -> list[SavedHypervisor]:
        """Every record that reads back whole; the others are renamed *.bad and logged."""
        records: list[SavedHypervisor] = []
        try:
            paths = sorted(p for p in self.dir.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return records
        for path in paths[:MAX_FILES]:
            record = self._read(path)
            if record is not None:
                records.append(record)
        if len(paths) > MAX_FILES:
            LOG.error("saved state: %d files in %s, read the first %d", len(paths), self.dir,
                      MAX_FILES)
        return records

    def _read(self, path: Path) -> SavedHypervisor | None:
        try:
            with path.open("rb") as f:
                record = decode(f.read(MAX_FILE + 1))
            if f"{record.report.name}.json" != path.name:
                raise SavedStateError(f"holds hypervisor {record.report.name}")
            return record
        except (OSError, SavedStateError) as exc:
            LOG.error("saved state %s ignored (%s); moved to %s.bad", path, exc, path.name)
            with contextlib.suppress(OSError):
                path.replace(path.with_name(path.name + ".bad"))
            return None

    # --- writing -------------------------------------------------------------------------

    def put(self, name: str, data: Record | None) -> None:
        """Queue a hypervisor's new record (None: it left); the latest one per name wins.
        The record is encoded on this object's thread, not the caller's."""
        with self._lock:
            self._pending[name] = data
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dove-saved-state", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            self.flush()
            self._stop.wait(SAVE_EVERY_S)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for name, data in pending.items():
            try:
                self._write(name, data)
                self.writes += 1
            except OSError as exc:
                self.failures += 1
                LOG.error("saved state: cannot write %s's record: %s", name, exc)

    def _write(self, name: str, record: Record | None) -> None:
        path = self.dir / f"{name}.json"
        if record is None:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_name(f".{name}.json.tmp")
        with tmp.open("wb") as f:
            f.write(record())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
