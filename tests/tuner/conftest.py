from __future__ import annotations

import sys
from pathlib import Path

# tuner_fakes.py sits beside the tests; keep it importable under any pytest import mode.
sys.path.insert(0, str(Path(__file__).parent))
