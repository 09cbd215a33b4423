"""Where photo bytes live: a directory, or an S3-compatible bucket (MinIO, OSS, COS, AWS S3).

Objects are content-addressed: the key is `<aa>/<sha256>.<ext>`, built only from the hash of the
bytes and a media type from a fixed list, never from anything a request carried. Writing the same
bytes twice is a no-op, so a retried upload, or two events with the same photo, share one object.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from api.attachments.images import EXTENSIONS
from api.settings import AttachmentSettings

_SHA256 = re.compile(r"[0-9a-f]{64}")


class StoredObjectMissing(LookupError):
    """A row names an object its backend does not hold (deleted by hand, another bucket)."""


class StorageUnavailable(RuntimeError):
    """The backend could not be reached or refused the operation."""


def object_key(sha256: str, media_type: str) -> str:
    """`<aa>/<sha256>.<ext>` for a hash and a known media type; anything else is a bug."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError("not a sha256 hex digest")
    return f"{sha256[:2]}/{sha256}.{EXTENSIONS[media_type]}"


class Backend(Protocol):
    name: str  # stored in event_attachment.storage: which backend holds a row's bytes

    def put(self, key: str, data: bytes, media_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...


class FileBackend:
    """Objects as files under one directory, written atomically (temporary file, then rename)."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / key

    def put(self, key: str, data: bytes, media_type: str) -> None:
        target = self._path(key)
        if target.is_file() and target.stat().st_size == len(data):
            return  # content-addressed: the same name holds the same bytes
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o640)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as error:
            raise StoredObjectMissing(key) from error


class S3Backend:
    """Objects in an S3-compatible bucket through boto3 (one client, shared by threads)."""

    name = "s3"

    def __init__(self, settings: AttachmentSettings) -> None:
        import boto3  # only deployments with a bucket pay for importing it
        from botocore.config import Config

        self.bucket = settings.s3_bucket
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            region_name=settings.s3_region,
            config=Config(
                connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
            ),
        )

    def _errors(self) -> tuple[type[BaseException], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def put(self, key: str, data: bytes, media_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=media_type)
        except self._errors() as error:
            raise StorageUnavailable(str(error)) from error

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            return bytes(answer["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise StoredObjectMissing(key) from error
            raise StorageUnavailable(str(error)) from error
        except self._errors() as error:
            raise StorageUnavailable(str(error)) from error


@dataclass(frozen=True)
class Storage:
    """The backend new photos go to, and every backend rows may name (to read old photos after
    a move to S3, the directory stays readable)."""

    writer: Backend
    readers: dict[str, Backend]

    def put(self, sha256: str, data: bytes, media_type: str) -> None:
        self.writer.put(object_key(sha256, media_type), data, media_type)

    def get(self, backend: str, sha256: str, media_type: str) -> bytes:
        reader = self.readers.get(backend)
        if reader is None:
            raise StoredObjectMissing(f"{backend} is not configured")
        return reader.get(object_key(sha256, media_type))


def open_storage(settings: AttachmentSettings) -> Storage:
    files = FileBackend(settings.directory)
    if settings.s3_bucket:
        bucket = S3Backend(settings)
        return Storage(writer=bucket, readers={"file": files, "s3": bucket})
    return Storage(writer=files, readers={"file": files})
