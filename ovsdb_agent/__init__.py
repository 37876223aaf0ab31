"""Everything in ryu_dove that talks OVSDB."""

import warnings

# python-ovs imports eventlet when it is installed (os-ken requires it) and eventlet warns on
# import; ryu_dove never uses eventlet, so the warning only confuses operators.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
