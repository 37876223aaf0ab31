"""Running the host tools the lab is made of (ip, ovs-*), with errors that say what failed."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

LOG = logging.getLogger(__name__)


class CommandFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        self.argv = list(argv)
        self.code = code
        self.stderr = stderr.strip()
        super().__init__(f"`{' '.join(argv)}` failed (exit {code}): {self.stderr}")


def run(argv: Sequence[str], *, netns: str | None = None, check: bool = True,
        timeout: float = 30.0, env: dict[str, str] | None = None,
        input: str | None = None) -> str:
    """Run a command (inside a namespace if given), feeding it `input` if given, and return
    its stdout."""
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    LOG.debug("run: %s", " ".join(full))
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=env,
                          **stdin)
    if check and proc.returncode != 0:
        raise CommandFailed(full, proc.returncode, proc.stderr)
    return proc.stdout


def ok(argv: Sequence[str], *, netns: str | None = None, timeout: float = 30.0) -> bool:
    """Run a command for its exit status only."""
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    return subprocess.run(full, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL).returncode == 0
