"""Uploaded files: byte cap, type sniffed from content, private temp copy, size checks before grounding.

:func:`save_upload` copies an :class:`~fastapi.UploadFile` into a private temporary folder (``0700``,
named ``medglip-serve-<pid>-…``) under a name whose suffix matches its CONTENT (the client's file name
is only used in messages), stops at ``max_upload_bytes + 1`` bytes (413) and notes its SHA-256 (for
the audit log). The copy and the unpacking of a ``.zip`` of a DICOM series (file count, declared and
actual bytes up to ``max_request_bytes`` + 64 MiB) run on the service's I/O pool, never on the event
loop. :func:`check_image` then reads the file with :func:`medglip.io.read_image` under the request's
read policy (decoded bytes checked from the header before allocating; PNG decompression bombs are
refused the same way), confined to the upload's own folder with no separate data files (a NRRD / MetaImage
header naming another file is refused by the reader, 422), and checks its shape against ``max_pixels`` /
``max_voxels`` (413 naming the shape and the limit). Errors are :class:`fastapi.HTTPException` whose
message names the upload's file name, never the temporary path; library error texts go to the log, not to
the client.
:func:`sweep_stale_workdirs` removes the folders of server processes that no longer run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException
from starlette.datastructures import UploadFile

from ..errors import MedglipError, ReadError
from ..io.policy import ReadTimeout, current_policy, read_policy
from .budget import Cancelled, MemoryBusy, current_scope
from .config import ServiceConfig

log = logging.getLogger("medglip.serve")

CHUNK = 1 << 20
#: file kinds recognised from content → the suffix the readers dispatch on
SUFFIXES: dict[str, str] = {
    "png": ".png",
    "jpeg": ".jpg",
    "bmp": ".bmp",
    "tiff": ".tif",
    "dicom": ".dcm",
    "nifti": ".nii",
    "nifti-gz": ".nii.gz",
    "nrrd": ".nrrd",
    "mha": ".mha",
    "zip": ".zip",
}
ACCEPTED = "PNG, JPEG, BMP, TIFF, DICOM, NIfTI (.nii / .nii.gz), NRRD, MetaImage (.mha) or a .zip of a DICOM series"
MAX_ZIP_FILES = 5000
#: DICOM headers a zip may hold on top of ``max_request_bytes`` of pixel data
ZIP_HEADER_ROOM = 64 * 2**20
WORKDIR_PREFIX = "medglip-serve-"


@dataclass
class Upload:
    """One saved upload: ``path`` (a file, or a folder for an unpacked DICOM series) in ``workdir``."""

    filename: str
    kind: str
    path: Path
    workdir: Path
    size: int
    sha256: str = ""

    def cleanup(self) -> None:
        """Remove the private temp folder and everything in it."""
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`check_image` found: spatial shape, whether it is a volume (several slices), and the
    image itself (read once: the Grounder gets it, not the file)."""

    shape: tuple[int, ...]
    is_volume: bool
    image: Any = field(default=None, repr=False, compare=False)


def clean_filename(name: str | None) -> str:
    """The client's file name reduced to a safe, short base name for messages."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = "".join(c for c in base if c.isprintable()).strip()
    return base[:120] or "upload"


def sniff_kind(head: bytes) -> str | None:
    """The file kind from its first bytes (at least 352 when the file has them), or None."""
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    if head.startswith(b"NRRD000"):
        return "nrrd"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if _is_nifti(head):
        return "nifti"
    if head.startswith(b"\x1f\x8b"):
        try:
            inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 560)
        except zlib.error:
            return None
        return "nifti-gz" if _is_nifti(inner) else None
    text = head[:512].lstrip()
    if text.startswith((b"ObjectType", b"NDims")) or (b"NDims" in text and b"ElementType" in text):
        return "mha"
    if len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x00\x08") and head[2:4] != b"\x00\x00":
        return "dicom"  # DICOM without the 128-byte preamble (group 0008 first)
    return None


def _is_nifti(head: bytes) -> bool:
    """NIfTI-1 (``n+1`` at 344, header size 348) or NIfTI-2 (``n+2`` at 4, header size 540)."""
    if head[344:348] == b"n+1\x00" and head[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c"):
        return True
    return head[4:8] == b"n+2\x00" and head[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c")


async def save_upload(upload: Any, config: ServiceConfig, *, allow_zip: bool = False, pool: Any = None) -> Upload:
    """Copy ``upload`` (an UploadFile) to a private temp folder, capped at ``max_upload_bytes``; a zip is
    unpacked. The work runs on ``pool`` (a :class:`~.pool.WorkPool`), or inline when None.

    Raises:
        HTTPException: 422 missing / empty file, 413 too large, 415 unknown type or a zip where
            only single files are accepted, 422 a zip that holds no usable DICOM files.
    """
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, "file: expected an uploaded file (multipart/form-data file part)")
    name = clean_filename(upload.filename)
    if pool is None:
        return save_file(upload.file, name, config, allow_zip=allow_zip)
    return await pool.run(save_file, upload.file, name, config, allow_zip)


def save_file(src: Any, name: str, config: ServiceConfig, allow_zip: bool = False) -> Upload:
    """:func:`save_upload`'s work, from the binary file object ``src`` (blocking; run it off the loop)."""
    limit = config.max_upload_bytes
    src.seek(0)
    head = src.read(1024)
    if not head:
        raise HTTPException(422, f"file {name!r} is empty (0 bytes)")
    kind = sniff_kind(head)
    if kind is None:
        raise HTTPException(415, f"file {name!r} is not a supported image: its content is not {ACCEPTED}")
    if kind == "zip" and not allow_zip:
        raise HTTPException(
            415, f"file {name!r} is a zip archive; only /v1/ground-volume accepts a zip (of one DICOM series)"
        )
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
    path = workdir / ("upload" + SUFFIXES[kind])
    size = 0
    digest = hashlib.sha256()
    try:
        with open(path, "wb") as f:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413,
                        f"file {name!r} is larger than this server's upload limit of "
                        f"{_bytes(limit)} (max_upload_bytes = {limit:,})",
                    )
                f.write(chunk)
                digest.update(chunk)
                chunk = src.read(CHUNK)
        saved = Upload(name, kind, path, workdir, size, digest.hexdigest())
        if kind == "zip":
            saved.path = extract_dicom_zip(
                path, workdir / "series", name, max_bytes=config.max_request_bytes + ZIP_HEADER_ROOM
            )
            path.unlink()
        return saved
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        log.error("cannot store an upload in %s: %s", workdir.parent, exc)
        raise HTTPException(
            507 if getattr(exc, "errno", None) == 28 else 500,
            "the server cannot store the upload (its temporary folder is full or unwritable)",
        ) from None
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def sweep_stale_workdirs(root: str | Path | None = None) -> int:
    """Remove the upload folders of server processes that no longer run (left by a crash or a kill);
    returns how many were removed. Folders of live processes (this one included) are kept."""
    removed = 0
    for folder in Path(root or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        m = re.match(rf"{WORKDIR_PREFIX}(\d+)-", folder.name)
        if not folder.is_dir() or m is None or _alive(int(m.group(1))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    if removed:
        log.info("removed %d upload folder(s) left by server processes that no longer run", removed)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _bytes(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def extract_dicom_zip(path: Path, dest: Path, name: str, *, max_bytes: int, max_files: int = MAX_ZIP_FILES) -> Path:
    """Unpack the DICOM files of a zip flat into ``dest`` (no paths from the archive are used).

    Raises:
        HTTPException: 422 corrupt / no DICOM files, 413 too many files or too many bytes unpacked.
    """
    dest.mkdir()
    total = 0
    found = 0
    scope = current_scope()
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > max_files:
                raise HTTPException(
                    413, f"file {name!r} holds {len(members):,} files, above the limit of {max_files:,}"
                )
            declared = sum(m.file_size for m in members)
            if declared > max_bytes:  # refused from the directory, before unpacking anything
                raise HTTPException(
                    413,
                    f"file {name!r} unpacks to {_bytes(declared)}, above this server's limit "
                    f"of {_bytes(max_bytes)} (max_request_bytes + DICOM headers)",
                )
            for i, m in enumerate(members):
                base = m.filename.rsplit("/", 1)[-1]
                if base.startswith(".") or m.filename.startswith("__MACOSX") or base.upper() == "DICOMDIR":
                    continue
                if (m.external_attr >> 16) & 0o170000 == 0o120000:
                    continue  # a symbolic link
                out = dest / f"{i:05d}.dcm"
                with zf.open(m) as src, open(out, "wb") as dst:
                    while True:
                        if scope is not None:
                            scope.check()
                        block = src.read(CHUNK)
                        if not block:
                            break
                        total += len(block)
                        if total > max_bytes:
                            raise HTTPException(
                                413,
                                f"file {name!r} unpacks to more than {_bytes(max_bytes)} "
                                "(max_request_bytes + DICOM headers)",
                            )
                        dst.write(block)
                with open(out, "rb") as fh:
                    if sniff_kind(fh.read(1024)) == "dicom":
                        found += 1
                        continue
                out.unlink()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error, OSError) as exc:
        raise HTTPException(422, f"file {name!r} is not a readable zip archive ({exc})") from None
    except RuntimeError as exc:  # encrypted members
        raise HTTPException(422, f"file {name!r}: {exc}") from None
    if not found:
        raise HTTPException(422, f"file {name!r} holds no DICOM files (a zip must hold one DICOM series)")
    return dest


#: Python's own errors, whose texts ("object of type 'NoneType' has no len()") say something about the
#: code, not the file: a reader's message that quotes one keeps its own words and loses the quote
_INTERNAL = re.compile(
    r"\((?:TypeError|AttributeError|KeyError|IndexError|NameError|AssertionError|"
    r"UnboundLocalError|ZeroDivisionError|RecursionError|SystemError|OverflowError)\b"
    r"(?:[^()]|\([^()]*\))*\)"
)


def reader_message(exc: BaseException, upload: Upload) -> str:
    """An exception's text for the client: the temp path replaced by the upload's file name, and
    quotes of Python's internal errors replaced (the full text goes to the log)."""
    text = exc.reason if isinstance(exc, ReadError) else str(exc)
    for p in sorted({str(upload.path), str(upload.workdir / "series"), str(upload.workdir)}, key=len, reverse=True):
        text = text.replace(p, "")
    clean = _INTERNAL.sub("(the reader failed on this file's content)", text)
    if clean != text:
        log.info("reader failure on upload %r: %s", upload.filename, text)
    return f"file {upload.filename!r}: {clean.strip(' :/')}"


#: the header of a 422 for an upload of the wrong dimensionality: the endpoint that takes it (the web page
#: resends the upload there, so a volume it could not recognise from its first bytes still works)
ENDPOINT_HEADER = "X-Medglip-Endpoint"


def check_image(upload: Upload, config: ServiceConfig, *, expect: str = "any") -> ImageInfo:
    """Read the upload (limits first) and check its size and dimensionality.

    Args:
        expect: ``"2d"`` (an image or a one-slice file), ``"volume"`` (several slices) or ``"any"``.

    Raises:
        HTTPException: 413 above ``max_pixels`` / ``max_voxels``, 422 unreadable or wrong
            dimensionality (naming the file and the reader's message).
    """
    from ..io import read_image

    if upload.kind in ("png", "jpeg", "bmp"):
        limit = config.max_pixels
    elif expect == "2d":
        limit = 4 * config.max_pixels
    elif expect == "volume":
        limit = config.max_voxels
    else:
        limit = max(config.max_voxels, 4 * config.max_pixels)
    # the upload is read as itself, from its own folder: no separate data file, nothing outside workdir
    confined = dataclasses.replace(current_policy(), data_files="refuse", root=upload.workdir)
    try:
        with read_policy(confined):
            img = read_image(upload.path, max_pixels=limit)
    except (MemoryBusy, Cancelled, ReadTimeout):
        raise  # 503 / 504, not the file's fault
    except ReadError as exc:
        if exc.reason.startswith("image too large"):
            raise HTTPException(413, _too_large(upload, exc.reason, config, expect)) from None
        raise HTTPException(422, reader_message(exc, upload)) from None
    except MedglipError as exc:
        raise HTTPException(422, reader_message(exc, upload)) from None
    except MemoryError:
        raise HTTPException(413, f"file {upload.filename!r}: image too large to decode") from None
    except Exception as exc:  # a reader library failing on odd content is still a bad file
        log.info("reader failure on upload %r (%s): %s: %s", upload.filename, upload.kind, type(exc).__name__, exc)
        raise HTTPException(422, reader_message(_condensed(exc), upload)) from None
    shape = tuple(int(s) for s in img.spatial_shape)
    volume = len(shape) == 3 and sum(s > 1 for s in shape) == 3
    n = int(np.prod(shape, dtype=object))
    name = f"file {upload.filename!r}"
    if volume and n > config.max_voxels:
        raise HTTPException(
            413,
            f"{name}: volume of shape {shape} = {n:,} voxels is above this server's limit of "
            f"{config.max_voxels:,} voxels (max_voxels)",
        )
    if not volume and n > config.max_pixels:
        raise HTTPException(
            413,
            f"{name}: image of shape {shape} = {n:,} pixels is above this server's limit of "
            f"{config.max_pixels:,} pixels (max_pixels)",
        )
    if expect == "2d" and volume:
        raise HTTPException(
            422,
            f"{name}: a 3D volume of shape {shape}; POST it to /v1/ground-volume (or send one 2D slice)",
            headers={ENDPOINT_HEADER: "/v1/ground-volume"},
        )
    if expect == "volume" and not volume:
        raise HTTPException(
            422,
            f"{name}: a 2D image of shape {shape}; POST it to /v1/ground (/v1/ground-volume needs several slices)",
            headers={ENDPOINT_HEADER: "/v1/ground"},
        )
    return ImageInfo(shape, volume, img)


def _condensed(exc: BaseException) -> MedglipError:
    """A library's exception as a message for the client: what failed, not the library's own text."""
    return MedglipError(
        "cannot read the image: the file is damaged or uses a variant of its format the readers do not support"
    )


def _too_large(upload: Upload, reason: str, config: ServiceConfig, expect: str) -> str:
    m = re.search(r"decodes to ([0-9,]+) bytes \(shape (\([^)]*\)), (\d+) bytes", reason)
    if m:
        return (
            f"file {upload.filename!r}: its image decodes to {m.group(1)} bytes (shape {m.group(2)}, {m.group(3)} "
            f"bytes per value), above this server's limit of {config.max_request_bytes:,} bytes per request "
            "(max_request_bytes)"
        )
    m = re.search(r"shape (\([^)]*\)) = ([0-9,]+)", reason)
    what = f"shape {m.group(1)} = {m.group(2)} values" if m else "a size"
    if expect == "volume":
        limit = f"{config.max_voxels:,} voxels (max_voxels)"
    elif expect == "2d" or upload.kind in ("png", "jpeg", "bmp"):
        limit = f"{config.max_pixels:,} pixels (max_pixels)"
    else:
        limit = (
            f"{config.max_pixels:,} pixels for 2D images (max_pixels) / {config.max_voxels:,} voxels for "
            "volumes (max_voxels)"
        )
    return f"file {upload.filename!r}: header declares {what}, above this server's limit of {limit}"
