"""Crash-safe file writing: a file (or a folder) either has its old content or its complete new one.

Every write goes to a temporary name in the destination folder, is fsync'd, and is renamed into
place (:func:`os.replace` is atomic on POSIX); folders are swapped in by renames.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a folder's renames durable (ignored where the platform cannot open folders)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_file(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp_path)`` writes the file's content (a library that wants a path: safetensors,
    ``shutil.copyfile``); the file is then fsync'd and renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        fsync_file(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write_file`)."""
    atomic_write_file(path, lambda tmp: tmp.write_bytes(data))


def swap_in_folder(tmp: Path, final: Path) -> None:
    """Put the complete folder ``tmp`` at ``final`` by renames (its files fsync'd first): an existing
    ``final`` is moved aside first, so a crash leaves either the old or the new folder, never half."""
    for f in Path(tmp).rglob("*"):
        if f.is_file():
            fsync_file(f)
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(final.parent)


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Write several files as one step: every file is first written to a temporary name beside its
    destination and fsync'd, and only when ALL are complete are they renamed into place. A failure
    while writing (a full disk, an error in a caller's producer) leaves every destination as it was
    and no temporary file behind."""
    done: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            done.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        for tmp, _ in done:
            Path(tmp).unlink(missing_ok=True)
        raise
    for tmp, path in done:
        os.replace(tmp, path)
    for parent in {p.parent for _, p in done}:
        fsync_dir(parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
