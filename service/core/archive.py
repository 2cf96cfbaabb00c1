"""Safe extraction of uploaded archives (.tar.gz/.tgz/.tar/.zip).

Refuses members with absolute paths or `..`, links and device files, more than the allowed number
of members, more unpacked bytes than allowed, and unpacked/packed ratios typical of a
decompression bomb. Sizes are counted while writing, not trusted from the headers.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from elmo_core.errors import ElmoError

CHUNK = 1 << 20
MAX_DEPTH = 32
MAX_PATH_CHARS = 1024


class UnsafeArchiveError(ElmoError):
    """An archive member or the archive as a whole breaks an extraction rule (-> 422)."""


class ArchiveTooLargeError(ElmoError):
    """An archive unpacks to more bytes than allowed (-> 413)."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits applied while extracting."""

    max_bytes: int
    max_members: int
    max_ratio: float


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def archive_kind(filename: str) -> str | None:
    """'tar' or 'zip' from a file name, None if it is not an archive name."""
    lower = filename.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    return None


def _safe_relpath(name: str) -> PurePosixPath:
    """The member path, checked: valid UTF-8, relative, no `..`, no backslash tricks, not
    empty, at most `MAX_DEPTH` levels and `MAX_PATH_CHARS` characters."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeArchiveError(f"archive member {name!a}: the name is not valid UTF-8") from None
    if "\\" in name or "\x00" in name:
        raise UnsafeArchiveError(f"archive member {name!r}: invalid characters in the path")
    if len(name) > MAX_PATH_CHARS or name.count("/") >= MAX_DEPTH:
        raise UnsafeArchiveError(
            f"archive member {name[:80]!r}...: deeper than {MAX_DEPTH} levels or longer than "
            f"{MAX_PATH_CHARS} characters"
        )
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r}: absolute paths are not allowed")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"archive member {name!r}: '..' in a path is not allowed")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise UnsafeArchiveError(f"archive member {name!r}: empty path")
    return PurePosixPath(*parts)


def _members(fileobj: IO[bytes], kind: str) -> Iterator[tuple[str, bool, IO[bytes] | None]]:
    """Yield (name, is_dir, stream) per member; rejects links and special files."""
    if kind == "zip":
        with zipfile.ZipFile(fileobj) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    yield info.filename, True, None
                    continue
                mode = (info.external_attr >> 16) & 0o170000
                if mode and mode not in (0o100000,):
                    raise UnsafeArchiveError(
                        f"archive member {info.filename!r}: only regular files are allowed"
                    )
                with zf.open(info) as stream:
                    yield info.filename, False, stream
        return
    with tarfile.open(fileobj=fileobj, mode="r:*") as tf:
        for member in tf:
            if member.isdir():
                yield member.name, True, None
                continue
            if not member.isfile():
                raise UnsafeArchiveError(
                    f"archive member {member.name!r}: links and special files are not allowed"
                )
            extracted = tf.extractfile(member)
            assert extracted is not None
            yield member.name, False, extracted


def extract_archive(archive: Path, kind: str, dest: Path, limits: ArchiveLimits) -> int:
    """Extract `archive` into `dest` (created); return the unpacked bytes. Cleans up on error."""
    packed = max(archive.stat().st_size, 1)
    total = 0
    count = 0
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with archive.open("rb") as fileobj:
            try:
                for name, is_dir, stream in _members(fileobj, kind):
                    count += 1
                    if count > limits.max_members:
                        raise UnsafeArchiveError(
                            f"archive has more than {limits.max_members} members"
                        )
                    target = dest / _safe_relpath(name)
                    if is_dir:
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    assert stream is not None
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.exists():
                        raise UnsafeArchiveError(f"archive member {name!r} appears twice")
                    with target.open("wb") as out:
                        while chunk := stream.read(CHUNK):
                            total += len(chunk)
                            _check_size(total, packed, limits)
                            out.write(chunk)
            except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
                if isinstance(exc, FileNotFoundError | PermissionError):
                    raise
                # an OSError's text can carry a server path: only its reason is shown
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise UnsafeArchiveError(f"cannot read the archive: {reason}") from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if count == 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise UnsafeArchiveError("the archive is empty")
    return total


def _check_size(total: int, packed: int, limits: ArchiveLimits) -> None:
    if total > limits.max_bytes:
        raise ArchiveTooLargeError(
            f"the archive unpacks to more than {limits.max_bytes} bytes (the limit)"
        )
    if total > 16 * CHUNK and total / packed > limits.max_ratio:
        raise UnsafeArchiveError(
            f"the archive unpacks to more than {limits.max_ratio:g} times its size "
            "(a decompression bomb?)"
        )


def dataset_root(dest: Path) -> Path:
    """The dataset directory inside an extracted archive: descend through single subfolders."""
    root = dest
    while True:
        entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
            continue
        if len(entries) == 1 and entries[0].is_file():
            return entries[0]
        return root
