"""A lab's certificates, made with ovs-pki as OVS expects them (and as an operator would).

ovs-pki keeps two CAs: `switchca` signs hypervisors' certificates (the controller trusts it),
`controllerca` signs the controller's (the hypervisors trust it). A certificate's
commonName is "NAME id:UUID"; the controller takes NAME as the peer's identity
(ovsdb_agent.sockets.peer_identity), so a hypervisor's certificate is made for its name.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PkiError(RuntimeError):
    pass


@dataclass(frozen=True)
class KeyPair:
    key: Path
    cert: Path


@dataclass(frozen=True)
class Pki:
    root: Path

    @property
    def switch_ca(self) -> Path:
        return self.root / "switchca" / "cacert.pem"

    @property
    def controller_ca(self) -> Path:
        return self.root / "controllerca" / "cacert.pem"

    def ensure(self) -> Pki:
        """Create the two CAs once (about a second)."""
        if not self.switch_ca.exists():
            self._run("init")
        return self

    def issue(self, name: str, kind: str) -> KeyPair:
        """A key and a certificate for `name`, signed by the CA of its kind ("switch" for a
        hypervisor, "controller"); made once, then reused."""
        out = self.root / "issued"
        pair = KeyPair(out / f"{name}-privkey.pem", out / f"{name}-cert.pem")
        if not pair.cert.exists():
            out.mkdir(parents=True, exist_ok=True)
            self._run("req+sign", name, kind, cwd=out)
            os.chmod(pair.key, 0o600)
        return pair

    def _run(self, *args: str, cwd: Path | None = None) -> None:
        proc = subprocess.run(["ovs-pki", f"--dir={self.root}", "--force", *args], cwd=cwd,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise PkiError(f"ovs-pki {' '.join(args)} failed: {proc.stderr.strip()}")
