"""Saving an uploaded file for a reader that needs a path, after checking its type."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from fastapi import UploadFile

from api.errors import InvalidInput


def save_upload(upload: UploadFile, folder: Path, suffixes: Iterable[str], accepted: str) -> Path:
    """Write the upload into folder under its own (sanitised) name; 422 for an unknown type."""
    name = Path(upload.filename or "upload").name
    if Path(name).suffix.lower() not in set(suffixes):
        raise InvalidInput(
            f"不支持的文件类型 {name}：请上传 {accepted}",
            code="unsupported_format",
            where="body.file",
        )
    target = folder / name
    with target.open("wb") as handle:
        shutil.copyfileobj(upload.file, handle)
    return target
