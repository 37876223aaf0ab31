"""ryu_dove: a DOVE network-virtualization controller on os-ken and Open vSwitch."""

import os
import warnings

# os-ken picks its hub when os_ken.lib.hub is first imported: native threads, never eventlet.
os.environ.setdefault("OSKEN_HUB_TYPE", "native")

# See ovsdb_agent/__init__.py: eventlet warns on import, and ryu_dove never uses it.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
