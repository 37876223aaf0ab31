"""`python -m benchmarks.scale`: see the package's docstring and `--help`."""

import sys

from benchmarks.scale.cli import main

sys.exit(main())
