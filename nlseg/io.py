"""Files: which suffixes are images, and writing so that nothing half-written sits under its final name."""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from nlseg.errors import InputError

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def writable_dir(path: str | os.PathLike[str], param: str = "out") -> Path:
    """``path`` as an output folder, created if needed; InputError naming ``param`` when it cannot be one."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder", param=param)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to {folder} ({exc.strerror or exc})", param=param) from None
    return folder


def writable_file(path: str | os.PathLike[str], suffixes: tuple[str, ...], param: str = "out") -> Path:
    """``path`` as an output file with one of ``suffixes``; InputError naming ``param`` when it cannot be written."""
    file = Path(path)
    if file.suffix.lower() not in suffixes:
        raise InputError(f"{file}: expected a file name ending in {' or '.join(suffixes)}", param=param)
    if file.is_dir():
        raise InputError(f"{file} is a folder", param=param)
    writable_dir(file.parent, param)
    return file


@contextmanager
def output_dir(path: str | os.PathLike[str], param: str = "out") -> Iterator[Path]:
    """:func:`writable_dir` for the length of a block; if the block fails, the folders it made and
    left empty are removed again (a failed run leaves no empty output folder behind)."""
    folder = Path(path)
    new = [p for p in (folder, *folder.parents) if not p.exists()]
    folder = writable_dir(folder, param)
    try:
        yield folder
    except BaseException:
        _remove_empty(folder, new)
        raise


def _remove_empty(folder: Path, created: list[Path]) -> None:
    """Remove empty sub-folders of ``folder``, then ``folder`` and the ``created`` parents if empty."""
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    for made in created:  # deepest first: ``folder``, then the parents made for it
        if made.is_dir() and not any(made.iterdir()):
            made.rmdir()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffix (``.NAME.tmp-PID-XXXX.mp4``) so writers that pick a format
    by extension still work; the writer's process id in it lets :func:`remove_stale_temps` tell a
    killed run's leftovers from a live run's file. On an exception the temporary file is removed;
    an OSError (a full disk, a read-only or forbidden folder) is raised again naming ``path``, the
    file the user asked for, so the command line prints one line ``PATH: No space left on device``.
    """
    final = Path(path)
    tmp: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{final.stem}.tmp-{os.getpid()}-"
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=final.suffix, dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the final file gets the usual permissions
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(final)) from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


# .NAME.tmp-PID-XXXXXXXX.SUFFIX (atomic_path), or .NAME.tmp-XXXXXXXX.SUFFIX without the PID (before it had one)
_TEMP_NAME = re.compile(r"\..+\.tmp-(?:(?P<pid>\d+)-)?[a-z0-9_]{8}(?:\.[^.]+)?")


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[str]:
    """Remove :func:`atomic_path`'s temporary files that a killed run left in ``folder`` and its sub-folders.

    A file is removed only if the process named in it no longer exists; a live run's file stays. Files
    of the older pattern without a process id are reported, not removed. Returns one note per file.
    """
    notes = []
    root = Path(folder)
    for path in sorted([*root.glob(".*.tmp-*"), *root.glob("*/.*.tmp-*")]):
        match = _TEMP_NAME.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        if match["pid"] is None:
            notes.append(f"{path}: left in place, a temporary file of an earlier run (no process id in its name); "
                         "delete it if no run is writing it")
        elif not _alive(int(match["pid"])):
            try:
                path.unlink()
            except FileNotFoundError:  # another run cleaned it first
                continue
            except OSError as exc:
                notes.append(f"{path}: cannot remove the temporary file of killed run {match['pid']} ({exc.strerror})")
                continue
            notes.append(f"{path}: removed, a temporary file of killed run {match['pid']}")
    return notes


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # not a PID this system can have
        return False
    return True


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Encode ``image`` (BGR or gray, as OpenCV takes it) by ``path``'s suffix and write it atomically.

    Encoding in memory and writing the bytes from Python reports a full disk or a read-only folder
    as an OSError naming ``path`` (``cv2.imwrite`` only returns False).
    """
    import cv2

    final = Path(path)
    ok, encoded = cv2.imencode(final.suffix or ".png", image)
    if not ok:
        raise ValueError(f"{final}: OpenCV cannot encode a {image.dtype} image of shape {image.shape} as {final.suffix}")
    with atomic_path(final) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return final


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary name, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
