"""For os-ken 3.1's osken-manager: `--user-flags <path of this file>` registers ryu_dove's
command-line options (--dove-*) before the manager parses its arguments.

    osken-manager --user-flags $(python -c 'import ryu_dove.user_flags as f;
    print(f.__file__)') ryu_dove.app --dove-policy policy.yaml --dove-plaintext

Without it the same options are read from a --config-file's [dove] section
(etc/ryu_dove.conf).
"""

import ryu_dove.app  # noqa: F401  (registers the options as it is imported)
