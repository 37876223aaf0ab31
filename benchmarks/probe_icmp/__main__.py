"""`python -m benchmarks.probe_icmp`: see the package's docstring and `--help`."""

import sys

from benchmarks.probe_icmp.cli import main

sys.exit(main())
