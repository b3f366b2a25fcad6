"""Output paths checked before any work: a folder or file we can really write, or one line why.

Pure standard library (no torch, no trainer): the planner's ``--output`` uses it, and
``trainer.paths`` re-raises its errors as ``TrainerError`` for floss-train and floss-tune.

A path is checked without creating it: its nearest existing ancestor must be a folder in which
a probe file can be created and removed (what a real write would need; permission bits alone
say nothing for root or on a read-only mount), and nothing on the way may be a file. Kernel
pseudo file systems (/proc, /sys, /dev except /dev/shm) are refused by name: root can create
entries in some of them, but nothing written there is kept.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from planner.errors import OutputPathError

# Writing into these is never what the user meant; /dev/shm is an ordinary tmpfs.
PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
ALLOWED_UNDER_PSEUDO = (Path("/dev/shm"),)
# Files that take output and keep nothing: `-o /dev/null` or `-o /dev/stdout` is a usual idiom.
SINK_FILES = (Path("/dev/null"), Path("/dev/stdout"), Path("/dev/stderr"))


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "a file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def _absolute(path: Path) -> Path:
    # not resolve(): the user's own symlinks stay as they are, only "." and ".." go
    return Path(os.path.normpath(os.path.abspath(path)))


def _in_pseudo_fs(path: Path) -> bool:
    p = _absolute(path)
    for allowed in ALLOWED_UNDER_PSEUDO:
        if p == allowed or allowed in p.parents:
            return False
    return any(p == root or root in p.parents for root in PSEUDO_ROOTS)


def _nearest_existing(path: Path) -> Path:
    p = _absolute(path)
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _probe(folder: Path, *, what: str, path: Path) -> None:
    """Create and remove a file in ``folder``: the one check that holds for root and ro mounts."""
    try:
        fd, name = tempfile.mkstemp(prefix=".floss-probe-", dir=folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputPathError(
            f"{what} {str(path)!r}: cannot write in {str(folder)!r} ({reason.lower()})."
        ) from None
    os.close(fd)
    os.unlink(name)


def _check_text(path: object, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise OutputPathError(f"{what} must be a path, but got {path!r}.")
    text = str(path)
    if "\x00" in text:
        raise OutputPathError(f"{what} {text!r} holds a NUL character.")
    for part in Path(text).parts:  # a longer name makes every later call raise ENAMETOOLONG
        if len(os.fsencode(part)) > NAME_MAX:
            raise OutputPathError(f"{what} {text!r}: a name in it is longer than {NAME_MAX} bytes.")
    return Path(text)


def _check_ancestors(path: Path, *, what: str) -> Path:
    """The nearest existing ancestor of ``path``: a writable folder, or OutputPathError."""
    if _in_pseudo_fs(path):
        raise OutputPathError(
            f"{what} {str(path)!r} is on a kernel pseudo file system (/proc, /sys, /dev); "
            "give a path on a real disk."
        )
    base = _nearest_existing(path)
    try:
        mode = base.stat().st_mode
    except OSError as exc:  # a dangling symlink, or no permission to look
        raise OutputPathError(
            f"{what} {str(path)!r}: cannot use {str(base)!r} ({exc.strerror or exc})."
        ) from None
    if not stat.S_ISDIR(mode):
        raise OutputPathError(
            f"{what} {str(path)!r}: {str(base)!r} is {_kind(mode)}, not a folder."
        )
    _probe(base, what=what, path=path)
    return base


def check_output_dir(path: str | os.PathLike[str], *, what: str) -> Path:
    """``path`` is (or can be made as) a folder we can write in; returns it as a Path.

    Nothing is created: the caller makes the folder when it writes. ``what`` names the option
    in the message (``--out-dir``)."""
    p = _check_text(path, what)
    if os.path.lexists(p) and not p.is_dir():
        try:
            kind = _kind(p.stat().st_mode)
        except OSError:
            kind = "a dangling link"
        raise OutputPathError(f"{what} {str(p)!r} is {kind}, not a folder.")
    _check_ancestors(p, what=what)
    return p


def check_output_file(path: str | os.PathLike[str], *, what: str) -> Path:
    """``path`` is a file we can (over)write, or can create in an existing folder.

    /dev/null, /dev/stdout and /dev/stderr are accepted (writing there is a common idiom)."""
    p = _check_text(path, what)
    if _absolute(p) in SINK_FILES:
        return p
    if os.path.lexists(p):
        try:
            mode = p.stat().st_mode
        except OSError:
            raise OutputPathError(f"{what} {str(p)!r} is a dangling link.") from None
        if not stat.S_ISREG(mode):
            raise OutputPathError(f"{what} {str(p)!r} is {_kind(mode)}, not a file.")
        if _in_pseudo_fs(p):
            _check_ancestors(p, what=what)  # raises with the pseudo-fs message
        try:
            with open(p, "ab"):  # opened for appending, nothing written: contents unchanged
                pass
        except OSError as exc:
            raise OutputPathError(
                f"{what} {str(p)!r} cannot be written ({(exc.strerror or str(exc)).lower()})."
            ) from None
        return p
    base = _check_ancestors(p, what=what)
    if base != _absolute(p).parent:
        raise OutputPathError(f"{what} {str(p)!r}: folder {str(p.parent)!r} does not exist.")
    return p
