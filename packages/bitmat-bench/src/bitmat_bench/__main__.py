"""`python -m bitmat_bench ...` is `bitmat-bench ...`."""

import sys

from .cli import main

sys.exit(main())
