"""bitmat-nn test setup: makes the shared float64 references (_nn_reference.py) importable."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
