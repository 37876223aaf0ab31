"""os-ken's hub made safe for ryu_dove (the hub type itself is chosen in ryu_dove/__init__).

os-ken 4.x runs its hub on native threads. Its native hub defines TaskExit = Exception, so
any exception in an event handler silently ends that app's event loop (and a failed listen
is silent too). Narrowing TaskExit to a class nothing raises makes such errors logged and
survivable. The app imports this module; exceptions are matched at run time, so the order
of imports does not matter.
"""

from __future__ import annotations

from os_ken.lib import hub


class _TaskExit(BaseException):
    """Raised by nothing: os-ken's event loops then log handler errors and go on."""


hub.TaskExit = _TaskExit
