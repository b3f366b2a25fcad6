"""Fixtures shared by the test folders; puts ``tests/`` on ``sys.path`` so every folder imports
the shared helpers as ``support`` (tests/support/)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# keep ``support`` importable under any pytest import mode (prepend adds tests/ too; importlib
# does not)
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def fleet_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fleet of two tiers far apart, half the clients each: a slow uplink (0.05 Mbps) and a
    fast one, with spread within each, so deadline rounds have stragglers and bandwidth-aware
    densities differ per client."""
    path = tmp_path_factory.mktemp("fleet") / "two.toml"
    path.write_text(
        'name = "two"\n'
        '[[tiers]]\nname = "slow"\nweight = 0.5\ndown_mbps = 1.0\nup_mbps = 0.05\n'
        "rtt_ms = 40.0\nspread_sigma = 0.5\n"
        '[[tiers]]\nname = "fast"\nweight = 0.5\ndown_mbps = 50.0\nup_mbps = 20.0\n'
        "rtt_ms = 10.0\nspread_sigma = 0.3\n"
    )
    return str(path)
