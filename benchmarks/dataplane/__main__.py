"""`python -m benchmarks.dataplane`: see the package's docstring and `--help`."""

import sys

from benchmarks.dataplane.cli import main

sys.exit(main())
