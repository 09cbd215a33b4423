"""Sizes of an Arrow IPC stream, read from its message headers before anything is decoded.

An Arrow stream may compress its buffers (LZ4, ZSTD): a 20 MB body could unpack to gigabytes,
and pyarrow unpacks a whole batch at once. Each record batch header (a flatbuffer) states its row
count, and a compressed buffer starts with its unpacked length, so both are checked first.
Format: https://arrow.apache.org/docs/format/Columnar.html#serialization-and-interprocess-communication-ipc
"""

from __future__ import annotations

import pyarrow as pa

DICTIONARY_BATCH, RECORD_BATCH = 2, 3  # MessageHeader union tags
_BUFFER = 16  # struct Buffer { offset: long; length: long }


class StreamTooLarge(Exception):
    def __init__(self, rows: int, unpacked_bytes: int) -> None:
        super().__init__(f"{rows} rows, {unpacked_bytes} bytes unpacked")
        self.rows = rows
        self.unpacked_bytes = unpacked_bytes


class _Table:
    """A flatbuffer table: where each field is, or None when absent."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data, self.position = data, position
        self.vtable = position - _int(data, position, 4, signed=True)
        self.vtable_size = _int(data, self.vtable, 2)

    def field(self, number: int) -> int | None:
        slot = 4 + 2 * number
        if slot >= self.vtable_size:
            return None
        offset = _int(self.data, self.vtable + slot, 2)
        return self.position + offset if offset else None

    def table(self, number: int) -> _Table | None:
        at = self.field(number)
        return None if at is None else _Table(self.data, at + _int(self.data, at, 4))

    def vector(self, number: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        at = self.field(number)
        if at is None:
            return 0, 0
        start = at + _int(self.data, at, 4)
        return start + 4, _int(self.data, start, 4)


def _int(data: bytes, at: int, size: int, signed: bool = False) -> int:
    if at < 0 or at + size > len(data):
        raise ValueError("Arrow 消息头不完整")
    return int.from_bytes(data[at : at + size], "little", signed=signed)


def check_stream(body: bytes, max_rows: int, max_unpacked_bytes: int) -> None:
    """Raise StreamTooLarge when the stream holds more rows or unpacks to more bytes than
    allowed (ValueError or pyarrow's errors when its headers are unreadable)."""
    rows = unpacked = 0
    for message in pa.ipc.MessageReader.open_stream(pa.BufferReader(body)):
        metadata = message.metadata.to_pybytes()
        root = _Table(metadata, _int(metadata, 0, 4))
        kind_at = root.field(1)
        kind = _int(metadata, kind_at, 1) if kind_at is not None else 0
        if kind not in (DICTIONARY_BATCH, RECORD_BATCH):
            continue
        batch = root.table(2)
        if batch is not None and kind == DICTIONARY_BATCH:
            batch = batch.table(1)  # DictionaryBatch { id; data: RecordBatch; isDelta }
        if batch is None:
            continue
        length_at = batch.field(0)
        if kind == RECORD_BATCH and length_at is not None:
            length = _int(metadata, length_at, 8, signed=True)
            if length < 0:
                raise ValueError("Arrow 记录批的行数为负")
            rows += length
        compressed = batch.field(3) is not None
        start, count = batch.vector(2)
        for i in range(count):
            offset = _int(metadata, start + i * _BUFFER, 8, signed=True)
            length = _int(metadata, start + i * _BUFFER + 8, 8, signed=True)
            if compressed and length >= 8:
                if message.body is None or not 0 <= offset <= message.body.size - 8:
                    raise ValueError("Arrow 缓冲区超出消息体")
                declared = _int(message.body.slice(offset, 8).to_pybytes(), 0, 8, signed=True)
                if declared < -1:  # -1 means "stored uncompressed"; less would cancel others
                    raise ValueError("Arrow 压缩缓冲区的解压长度为负")
                unpacked += length - 8 if declared == -1 else declared
            elif length < 0 or offset < 0:
                raise ValueError("Arrow 缓冲区的位置或长度为负")
            else:
                unpacked += length
        if rows > max_rows or unpacked > max_unpacked_bytes:
            raise StreamTooLarge(rows, unpacked)
