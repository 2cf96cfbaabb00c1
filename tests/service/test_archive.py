"""Safe extraction: path traversal, links, member counts, sizes and decompression bombs."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from service.core.archive import (
    ArchiveLimits,
    ArchiveTooLargeError,
    UnsafeArchiveError,
    dataset_root,
    extract_archive,
)

LIMITS = ArchiveLimits(max_bytes=50 << 20, max_members=20, max_ratio=100.0)


def write_tar(path: Path, members: list[tarfile.TarInfo], payloads: list[bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in zip(members, payloads, strict=True):
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def file_member(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [("../evil.txt", r"'\.\.'"), ("a/../../evil.txt", r"'\.\.'"), ("/etc/evil", "absolute")],
)
def test_tar_member_paths_outside_are_refused(tmp_path: Path, name: str, message: str) -> None:
    archive = write_tar(tmp_path / "a.tar.gz", [file_member(name)], [b"x"])
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, "tar", tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_tar_links_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("data/trn_X.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = write_tar(tmp_path / "a.tar.gz", [link], [None])
    with pytest.raises(UnsafeArchiveError, match="links"):
        extract_archive(archive, "tar", tmp_path / "out", LIMITS)


def test_zip_traversal_and_good_zip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.'"):
        extract_archive(bad, "zip", tmp_path / "out", LIMITS)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("ds/train.jsonl", '{"text": "a", "labels": ["x"]}\n')
    size = extract_archive(good, "zip", tmp_path / "ok", LIMITS)
    assert size == 31 and dataset_root(tmp_path / "ok") == tmp_path / "ok" / "ds" / "train.jsonl"


def test_too_many_members(tmp_path: Path) -> None:
    names = [f"f{i}.txt" for i in range(21)]
    archive = write_tar(tmp_path / "a.tar.gz", [file_member(n) for n in names], [b"1"] * 21)
    with pytest.raises(UnsafeArchiveError, match="more than 20 members"):
        extract_archive(archive, "tar", tmp_path / "out", LIMITS)


def test_decompression_bomb_is_stopped_while_writing(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "bomb.tar.gz", [file_member("zeros.txt")], [bytes(40 << 20)])
    assert archive.stat().st_size < 100_000  # 40 MiB of zeros compress ~1000x
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        extract_archive(archive, "tar", tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_unpacked_size_limit(tmp_path: Path) -> None:
    payload = bytes(range(256)) * (8 << 10)  # 2 MiB, poorly compressible enough for ratio 100
    archive = write_tar(tmp_path / "a.tar.gz", [file_member("big.bin")], [payload])
    small = ArchiveLimits(max_bytes=1 << 20, max_members=10, max_ratio=1e9)
    with pytest.raises(ArchiveTooLargeError, match="limit"):
        extract_archive(archive, "tar", tmp_path / "out", small)


def test_empty_and_corrupt_archives(tmp_path: Path) -> None:
    empty = write_tar(tmp_path / "e.tar.gz", [], [])
    with pytest.raises(UnsafeArchiveError, match="empty"):
        extract_archive(empty, "tar", tmp_path / "o1", LIMITS)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b this is not gzip" * 10)
    with pytest.raises(UnsafeArchiveError, match="cannot read"):
        extract_archive(junk, "tar", tmp_path / "o2", LIMITS)
