"""The endpoint directory: who is where (model, interface, in-memory implementation), and how
hypervisors' port reports become endpoints (bindings, ports)."""

from ryu_dove.directory.base import Directory
from ryu_dove.directory.memory import MemoryDirectory
from ryu_dove.directory.model import Endpoint, Hypervisor

__all__ = ["Directory", "Endpoint", "Hypervisor", "MemoryDirectory"]
