"""ryu_dove: a DOVE network-virtualization controller on os-ken and Open vSwitch."""

import warnings

# See ovsdb_agent/__init__.py: eventlet warns on import, and ryu_dove never uses it.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
