"""Endpoint learning from the data plane (docs/learning.md).

- settings: the limits an operator sets (addresses per port, idle expiry, muting);
- learned: the dove-learned-ips value in a hypervisor's OVSDB, read and written;
- frames: what a punted frame claims, parsed totally;
- learner: the engine's side: punts and expiries to addresses, checked, written back.
"""
