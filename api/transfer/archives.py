"""Unpacking members of a zip (zipped Shapefile, KMZ) without trusting the archive.

A member name may try to leave the folder (`../x`, `/etc/x`, `C:\\x`), and a member may unpack
to far more than the upload (a zip bomb), whatever its header says. Every name is checked, the
directory's sizes are summed and capped before anything is unpacked, and the bytes actually
written are counted again while unpacking.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK_BYTES = 1 << 20
# Below this, any compression ratio is fine: a Shapefile's .dbf pads every text field with
# spaces and easily compresses 100:1 without being a bomb.
RATIO_FLOOR_BYTES = 16 << 20


@dataclass(frozen=True)
class UnpackLimits:
    max_bytes: int  # summed uncompressed size of the members unpacked
    max_ratio: float  # uncompressed : compressed, over the members unpacked


class UnsafeArchive(ValueError):
    """A member name or size the archive must not have; `member` names it."""

    def __init__(self, message: str, member: str) -> None:
        super().__init__(message)
        self.member = member


class ArchiveTooLarge(UnsafeArchive):
    pass


def unsafe_name(name: str) -> bool:
    """Absolute, drive-qualified or `..` names, which would leave the folder (either slash)."""
    path = PurePosixPath(name.replace("\\", "/"))
    return (
        path.is_absolute()
        or "\x00" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in path.parts
    )


def plain_name(name: str) -> str:
    """A member's file name without its folders (old Windows tools write backslashes)."""
    return PurePosixPath(name.replace("\\", "/")).name


def checked_names(archive: zipfile.ZipFile) -> list[str]:
    """The archive's member names, refusing it when any of them is unsafe."""
    names = archive.namelist()
    for name in names:
        if unsafe_name(name):
            raise UnsafeArchive(f"zip 中的成员 {name!r} 路径不安全（绝对路径或含 ..）", name)
    return names


def unpack(
    archive: zipfile.ZipFile, targets: dict[str, str], folder: Path, limits: UnpackLimits
) -> None:
    """Write each member (key) into `folder` under a plain file name (value)."""
    members = [archive.getinfo(name) for name in targets]
    declared = sum(m.file_size for m in members)
    compressed = sum(m.compress_size for m in members)
    largest = max(members, key=lambda m: m.file_size).filename if members else ""
    if declared > limits.max_bytes:
        raise ArchiveTooLarge(
            f"zip 成员解压后共 {declared} 字节，超过上限 {limits.max_bytes}（最大的是 {largest}）",
            largest,
        )
    if declared > RATIO_FLOOR_BYTES and declared > limits.max_ratio * max(compressed, 1):
        raise ArchiveTooLarge(
            f"zip 成员的压缩比 {declared / max(compressed, 1):.0f}:1 超过上限 "
            f"{limits.max_ratio:.0f}:1（最大的是 {largest}）",
            largest,
        )
    root = folder.resolve()
    written = 0
    for member in members:
        target = (folder / targets[member.filename]).resolve()
        if target.parent != root:
            raise UnsafeArchive(
                f"zip 成员 {member.filename!r} 的目标不在临时目录中", member.filename
            )
        try:
            with archive.open(member) as source, target.open("wb") as sink:
                while chunk := source.read(CHUNK_BYTES):
                    written += len(chunk)
                    if written > limits.max_bytes:  # the header understated the size
                        raise ArchiveTooLarge(
                            f"zip 成员 {member.filename} 解压后超过上限 {limits.max_bytes} 字节",
                            member.filename,
                        )
                    sink.write(chunk)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            NotImplementedError,
            RuntimeError,
        ) as error:
            # RuntimeError: an encrypted member; NotImplementedError: an unknown compression.
            raise UnsafeArchive(
                f"zip 成员 {member.filename} 无法解压（{error}）", member.filename
            ) from error
