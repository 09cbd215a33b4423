"""Saving an uploaded file for a reader that needs a path, after checking its type and size."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fastapi import UploadFile

from api.errors import InvalidInput, PayloadTooLarge
from api.lookup.points_io import UnreadablePoints
from api.transfer.read import UnreadableFile

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class SavedUpload:
    path: Path  # `upload<suffix>` in the caller's folder: no part of it comes from the request
    name: str  # the client's file name, cleaned, for messages and reports only

    def named_for_client(self, message: str) -> str:
        """A message about our saved copy, naming the client's file instead (no folder of ours)."""
        return message.replace(str(self.path), self.name).replace(self.path.name, self.name)


@contextmanager
def client_named_errors(saved: SavedUpload) -> Iterator[None]:
    """A reader's errors about the saved upload name the client's file, never our temporary one
    (api/errors.py turns them into answers)."""
    try:
        yield
    except (UnreadableFile, UnreadablePoints) as error:
        error.args = (saved.named_for_client(str(error)),)
        raise


def save_upload(
    upload: UploadFile, folder: Path, suffixes: Iterable[str], accepted: str, max_bytes: int
) -> SavedUpload:
    """Write the upload into folder under a fixed name; 422 for an unknown type, 413 if too big."""
    name = display_name(upload.filename)
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in set(suffixes):
        raise InvalidInput(
            f"不支持的文件类型 {name}：请上传 {accepted}",
            code="unsupported_format",
            where="body.file",
        )
    target = folder / f"upload{suffix}"
    written = 0
    with target.open("wb") as handle:
        while chunk := upload.file.read(CHUNK_BYTES):
            written += len(chunk)
            if written > max_bytes:
                raise PayloadTooLarge(f"{name} 超过上限 {max_bytes} 字节", where="body.file")
            handle.write(chunk)
    return SavedUpload(target, name)


def display_name(filename: str | None) -> str:
    """The last part of a client's file name (either slash), without control characters."""
    last = re.split(r"[\\/]", filename or "")[-1]
    cleaned = re.sub(r"[\x00-\x1f\x7f]", "", last).strip()[-120:]
    return cleaned if cleaned not in ("", ".", "..") else "upload"
