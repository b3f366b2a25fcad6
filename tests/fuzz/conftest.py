"""The fuzz suite's world of prepared files, and the count of generated inputs per CLI.

Run longer with ``FLOSS_FUZZ=long`` (20x the examples of each test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fuzz_common import COUNTS, LONG, OUTCOMES, fixed_inputs, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixed_inputs(tmp_path_factory.mktemp("inputs"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    tr = terminalreporter
    tr.section("fuzz: generated inputs tried per CLI and API request model" + (" (FLOSS_FUZZ=long)" if LONG else ""))
    for cli in sorted(COUNTS):
        refused = OUTCOMES[(cli, "refused")]
        valid = OUTCOMES[(cli, "valid")]
        tr.write_line(f"{cli}: {COUNTS[cli]} tried, {refused} refused in one line, {valid} valid")
    tr.write_line(f"total: {sum(COUNTS.values())}")
