"""`python -m benchmarks.convergence`: see the package's docstring and `--help`."""

import sys

from benchmarks.convergence.cli import main

sys.exit(main())
