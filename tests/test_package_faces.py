"""Each package's face (its ``__init__``'s ``__all__``) is the one docs/contracts.md lists under
"Package faces", every name resolves, every dotted name the contracts page cites exists, and
importing the faces stays cheap (no torch, transformers, FastAPI or flwr until a name is used)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "docs" / "contracts.md"
PACKAGES = ("planner", "trainer", "federation", "tuner", "service", "floss_cli")
HEAVY = ("torch", "transformers", "peft", "fastapi", "uvicorn", "flwr", "optuna", "numpy")


def documented_faces() -> dict[str, list[str]]:
    """package -> the names its line under "## Package faces" lists, in order."""
    section = CONTRACTS.read_text(encoding="utf-8").split("## Package faces", 1)[1]
    section = section.split("\n## ", 1)[0]
    faces: dict[str, list[str]] = {}
    for line in re.split(r"\n(?=- `)", section):
        found = re.match(r"- `(\w+)`: (.*)", line, flags=re.S)
        if found:
            faces[found.group(1)] = re.findall(r"`(\w+)`", found.group(2))
    return faces


def cited_names() -> list[str]:
    """Every backticked dotted name on the contracts page that starts with a package."""
    text = CONTRACTS.read_text(encoding="utf-8")
    pattern = re.compile(rf"`((?:{'|'.join(PACKAGES)})(?:\.\w+)*)")
    return sorted({m.group(1) for m in pattern.finditer(text)})


def resolve(dotted: str) -> Any:
    """The object a dotted name names: the longest importable module, then attributes (a
    dataclass's field counts as its attribute)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            if i == 1:
                raise
            continue
        for part in parts[i:]:
            fields = getattr(obj, "__dataclass_fields__", {})
            obj = fields[part] if part in fields else getattr(obj, part)
        return obj
    raise AssertionError(dotted)


def _needs(package: str) -> None:
    extra = {"federation": "flwr", "service": "fastapi"}.get(package)
    if extra is not None:
        pytest.importorskip(extra)


def test_every_package_has_a_face_on_the_contracts_page() -> None:
    assert sorted(documented_faces()) == sorted(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_face_is_the_documented_one_and_every_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    face = list(module.__all__)
    assert face == sorted(set(face)), f"{package}.__all__: sorted, each name once"
    assert documented_faces()[package] == face, f"docs/contracts.md lists {package}'s face"
    _needs(package)
    for name in face:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_every_dotted_name_on_the_contracts_page_exists() -> None:
    missing = []
    for dotted in cited_names():
        if dotted.split(".")[0] in ("federation", "service"):
            _needs(dotted.split(".")[0])
        try:
            resolve(dotted)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{dotted}: {exc}")
    assert not missing, "\n".join(missing)


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import() -> None:
    import planner

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = planner.nothing_here  # type: ignore[attr-defined]
    from planner import codec  # a submodule, not a face name

    assert codec.__name__ == "planner.codec"


def test_importing_the_faces_imports_nothing_heavy() -> None:
    """`floss-plan` never imports torch; `import planner` (and every face) stays cheap."""
    code = (
        "import sys, planner, trainer, federation, tuner, service, floss_cli; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout
