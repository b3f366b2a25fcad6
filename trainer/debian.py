"""The Debian package-descriptions task: a description labelled by its package's Section, one
client per Maintainer (a natural, heavy-tailed, non-IID partition), offline from the package
lists every Debian machine keeps after ``apt-get update``.

Pure Python. Deterministic for a given package list: the stanzas are read from
``apt-cache dumpavail`` (or a file in that format), sorted by package name, and the same list
always gives the same rows; ``DebianRows.provenance`` names the source, its row count and the
SHA-256 of its text.

What makes the task fair (docs/trainer.md, "Debian package descriptions"):

* the text is the description only (the short line, plus the long one where the lists carry
  it); the package name never enters it, and where the description repeats the package's or its
  source package's name, the name is masked (``NAME_MASK``): names give sections away
  (``python3-*``, ``golang-*``, ``fonts-*``, ``*-doc``);
* one binary package per source package (the first by name): the binaries of one source
  share near-identical descriptions ("foo - data files") and would otherwise sit on both sides
  of the train/test split; repeated descriptions are kept once;
* the default classes are topic sections (``DEFAULT_SECTIONS``), not packaging ones (libs,
  libdevel, doc, debug, oldlibs, metapackages, tasks) nor language ecosystems (python, perl,
  rust, haskell, ...) whose descriptions name the language.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import TrainerError

# topic sections of Debian's archive: what a package is for, not how it is packaged or which
# language ecosystem it belongs to; `min_examples_per_class` then drops the rarer ones
DEFAULT_SECTIONS = (
    "admin",
    "database",
    "editors",
    "electronics",
    "games",
    "graphics",
    "hamradio",
    "mail",
    "math",
    "net",
    "science",
    "sound",
    "text",
    "utils",
    "video",
    "web",
)
ALL_SECTIONS = "all"
NAME_MASK = "[package]"
DUMPAVAIL = ("apt-cache", "dumpavail")
DUMPAVAIL_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Package:
    name: str
    source: str
    section: str  # without its archive area ("contrib/games" -> "games")
    maintainer: str
    description: str


@dataclass(frozen=True)
class DebianRows:
    texts: list[str]
    sections: list[str]
    maintainers: list[str]
    provenance: str


def parse_sections(text: str | None) -> tuple[str, ...] | None:
    """'admin,games' -> ('admin', 'games'); None -> DEFAULT_SECTIONS; 'all' -> None (every one)."""
    if text is None:
        return DEFAULT_SECTIONS
    if text.strip() == ALL_SECTIONS:
        return None
    parts = tuple(sorted({p.strip() for p in text.split(",") if p.strip()}))
    if not parts or any(not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", p) for p in parts):
        raise TrainerError(
            f"sections must be 'all' or a comma list of Debian sections like admin,games, "
            f"but got {text!r}."
        )
    return parts


def _stanzas(text: str) -> list[dict[str, str]]:
    """RFC 822-style stanzas; continuation lines (leading space) join their field with '\\n'."""
    out: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    last = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if fields:
                out.append(fields)
            fields, last = {}, ""
        elif line[0] in " \t":
            if last:
                fields[last] += "\n" + line[1:]
        else:
            key, sep, value = line.partition(":")
            if sep:
                last = key.strip()
                fields[last] = value.strip()
    return out


def _long_description(lines: list[str]) -> str:
    """Debian's long-description lines: ' .' is an empty line; everything else is text."""
    return " ".join(line.strip() for line in lines if line.strip() not in ("", "."))


def parse_packages(text: str) -> list[Package]:
    """Every stanza with a Package, Section, Maintainer and Description, sorted by name."""
    packages = []
    for st in _stanzas(text):
        name = st.get("Package", "")
        desc = st.get("Description", "")
        section = st.get("Section", "").rsplit("/", 1)[-1]
        maintainer = st.get("Maintainer", "")
        if not (name and desc.strip() and section and maintainer):
            continue
        short, *rest = desc.split("\n")
        description = " ".join(p for p in (short.strip(), _long_description(rest)) if p)
        source = (st.get("Source") or name).split()[0]  # "Source: foo (1.2-3)"
        packages.append(
            Package(
                name=name,
                source=source,
                section=section,
                maintainer=maintainer,
                description=description,
            )
        )
    packages.sort(key=lambda p: p.name)
    return packages


def mask_names(text: str, names: tuple[str, ...]) -> str:
    """Each whole-word, case-insensitive occurrence of any of ``names`` -> NAME_MASK."""
    for name in sorted(set(names), key=len, reverse=True):
        text = re.sub(
            rf"(?<![\w.+-]){re.escape(name)}(?![\w+-])", NAME_MASK, text, flags=re.IGNORECASE
        )
    return text


def select(packages: list[Package], sections: tuple[str, ...] | None) -> list[Package]:
    """One package per source (the first by name) within ``sections`` (None: all), each
    description once."""
    wanted = None if sections is None else set(sections)
    seen_sources: set[str] = set()
    seen_texts: set[str] = set()
    out = []
    for p in packages:
        if wanted is not None and p.section not in wanted:
            continue
        if p.source in seen_sources:
            continue
        seen_sources.add(p.source)
        key = p.description.casefold()
        if key in seen_texts:
            continue
        seen_texts.add(key)
        out.append(p)
    return out


def read_package_lists(path: str | None) -> tuple[str, str]:
    """(text, where): the file ``path`` in ``apt-cache dumpavail`` format, or the machine's lists
    through ``apt-cache dumpavail``. One line, naming what to do, where there are none."""
    if path is not None:
        file = Path(path).expanduser()
        if file.is_dir():
            raise TrainerError(
                f"data_path {str(file)!r} is a folder; debian-packages reads one file saved "
                "with `apt-cache dumpavail > FILE`."
            )
        if not file.is_file():
            raise TrainerError(f"data_path {str(file)!r} does not exist.")
        try:
            return file.read_text(encoding="utf-8", errors="replace"), repr(str(file))
        except OSError as exc:
            raise TrainerError(f"cannot read {str(file)!r}: {exc.strerror or exc}.") from None
    if shutil.which(DUMPAVAIL[0]) is None:
        raise TrainerError(
            "data=debian-packages needs Debian's package lists: no apt-cache here; pass "
            "--data-path FILE saved with `apt-cache dumpavail > FILE` on a Debian machine."
        )
    try:
        done = subprocess.run(
            DUMPAVAIL, capture_output=True, timeout=DUMPAVAIL_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TrainerError(f"`{' '.join(DUMPAVAIL)}` failed: {exc}.") from None
    text = done.stdout.decode("utf-8", errors="replace")
    if done.returncode != 0 or "Package:" not in text:
        raise TrainerError(
            "data=debian-packages found no package lists (`apt-cache dumpavail` printed no "
            "package); run `apt-get update` as root first, or pass --data-path FILE."
        )
    return text, "`apt-cache dumpavail`"


def debian_rows(path: str | None, sections: str | None) -> DebianRows:
    """Texts (masked descriptions), sections and maintainers of the selected packages."""
    wanted = parse_sections(sections)
    text, where = read_package_lists(path)
    packages = parse_packages(text)
    if not packages:
        raise TrainerError(f"{where} holds no package stanza with a Description and a Section.")
    chosen = select(packages, wanted)
    if not chosen:
        raise TrainerError(
            f"{where} holds no package in the sections {', '.join(wanted or ())}; "
            f"its sections: {', '.join(sorted({p.section for p in packages})[:30])}."
        )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    provenance = (
        f"debian-packages from {where}: {len(packages):,} packages (sha256 {digest}), "
        f"{len(chosen):,} kept (one per source package, descriptions once, "
        f"{'all sections' if wanted is None else f'{len(wanted)} sections'})"
    )
    return DebianRows(
        texts=[mask_names(p.description, (p.name, p.source)) for p in chosen],
        sections=[p.section for p in chosen],
        maintainers=[p.maintainer for p in chosen],
        provenance=provenance,
    )
