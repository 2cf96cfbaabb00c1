"""Uploads: copy to disk under a size limit, unpack safely, validate in a child process."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from elmo_core.errors import DatasetFormatError
from service.core.archive import ArchiveLimits, archive_kind, dataset_root, extract_archive
from service.core.config import Settings
from service.core.dataset_validation import ValidatedDataset, validate_dataset
from service.errors import PayloadTooLarge, UnsupportedUpload

SINGLE_FILE_SUFFIXES = (".jsonl", ".json", ".txt")
CHUNK = 1 << 20


def safe_filename(name: str | None, default: str) -> str:
    """The last path component of a client file name, reduced to safe characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).lstrip(".")
    return cleaned[:200] or default


def save_stream(src: IO[bytes], dest: Path, limit: int) -> int:
    """Copy `src` to `dest`, raising PayloadTooLarge past `limit` bytes; return the size."""
    total = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        while chunk := src.read(CHUNK):
            total += len(chunk)
            if total > limit:
                out.close()
                dest.unlink(missing_ok=True)
                raise PayloadTooLarge(f"upload exceeds the limit of {limit} bytes")
            out.write(chunk)
    return total


def scratch_dir(settings: Settings) -> Path:
    """A fresh temporary directory inside the artifacts dir (same filesystem: cheap renames)."""
    path = settings.effective_artifacts_dir / "tmp" / uuid.uuid4().hex
    path.mkdir(parents=True)
    return path


def ingest_dataset(
    settings: Settings,
    src: IO[bytes],
    filename: str,
    dest: Path,
    format: str,
    check_size: Callable[[int], None],
) -> tuple[ValidatedDataset, int, Path]:
    """Store an uploaded dataset at `dest` once a child process has validated it; return (its
    summary, bytes stored, dataset path).

    `check_size(n)` (the storage quota) runs as early as each size is known: on the spooled
    upload before it is copied, then on the unpacked bytes before anything parses them. Archives
    are unpacked with the safety limits; a single file must be JSONL (or a BoW file). Parsing and
    statistics run in the validation worker (`dataset_validation`), never in this process.
    DatasetFormatError names the file relative to the upload (never a server path). Nothing is
    left on disk unless the dataset is valid.
    """
    name = safe_filename(filename, "upload")
    kind = archive_kind(name)
    if kind is None and not name.lower().endswith(SINGLE_FILE_SUFFIXES):
        raise UnsupportedUpload(
            f"unsupported file {name!r}: upload a .tar.gz, .tgz, .tar or .zip archive of a "
            "dataset directory, or a single .jsonl file"
        )
    spooled = _stream_size(src)
    if spooled is not None:
        check_size(spooled)
    scratch = scratch_dir(settings)
    try:
        raw = scratch / name
        size = save_stream(src, raw, settings.max_upload_bytes)
        if size == 0:
            raise DatasetFormatError(name, 0, "the uploaded file is empty")
        if spooled is None:
            check_size(size)
        data = scratch / "data"
        if kind is not None:
            limits = ArchiveLimits(
                settings.max_extracted_bytes,
                settings.max_archive_members,
                settings.max_compression_ratio,
            )
            size = extract_archive(raw, kind, data, limits)
            raw.unlink()
            check_size(size)
        else:
            data.mkdir()
            raw.rename(data / name)
        root = dataset_root(data)
        try:
            dataset = validate_dataset(root, format, settings, scratch / "validation")
        except DatasetFormatError as exc:
            raise DatasetFormatError(_relative(exc.file, data), exc.line, exc.reason) from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        data.rename(dest)
        relative_root = root.relative_to(data)
        return dataset, size, dest / relative_root
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _stream_size(src: IO[bytes]) -> int | None:
    """The bytes left in a seekable stream (a spooled upload), None if it cannot tell."""
    try:
        here = src.tell()
        end = src.seek(0, os.SEEK_END)
        src.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return max(0, end - here)


def _relative(file: str, base: Path) -> str:
    """`file` relative to the upload root (a server path never leaks into an error)."""
    try:
        return str(Path(file).resolve().relative_to(base.resolve()))
    except ValueError:
        return Path(file).name
