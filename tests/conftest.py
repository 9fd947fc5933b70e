"""Make the fixture writers in tests/layouts.py importable as ``from layouts import ...``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
