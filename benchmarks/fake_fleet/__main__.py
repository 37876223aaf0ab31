"""`python -m benchmarks.fake_fleet`: see the package's docstring and `--help`."""

import sys

from benchmarks.fake_fleet.cli import main

sys.exit(main())
