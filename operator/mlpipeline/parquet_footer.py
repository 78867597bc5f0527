"""The row count of a Parquet file, read from its footer without a Parquet library: the operator
counts the rows of new partitions (spec.retrain.onNewData.minNewRows) and must not load pyarrow for
it (the control plane loads no data-plane library: `make lint`'s import contracts).

A Parquet file ends with its FileMetaData, serialized with Thrift's compact protocol, the length of
that footer (4 bytes, little-endian) and the magic ``PAR1``. FileMetaData's field 3 is ``num_rows``
(i64); fields 1 (version) and 2 (the schema, a list of structs) come before it and are skipped
generically."""

from __future__ import annotations

import struct
from typing import BinaryIO

MAGIC = b"PAR1"
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)
NUM_ROWS = 3


class FooterError(ValueError):
    pass


def row_count(handle: BinaryIO) -> int:
    """``num_rows`` of the Parquet file open (seekable, binary) in ``handle``."""
    handle.seek(-8, 2)
    tail = handle.read(8)
    if len(tail) != 8 or tail[4:] != MAGIC:
        raise FooterError("not a Parquet file (no PAR1 at its end)")
    (length,) = struct.unpack("<I", tail[:4])
    handle.seek(-8 - length, 2)
    return footer_rows(handle.read(length))


def footer_rows(footer: bytes) -> int:
    reader = _Reader(footer)
    field = 0
    while True:
        kind, field = reader.field_header(field)
        if kind == STOP:
            raise FooterError("the Parquet footer has no num_rows")
        if field == NUM_ROWS and kind == I64:
            return reader.zigzag()
        reader.skip(kind)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise FooterError("the Parquet footer ends too early")
        self.at += 1
        return self.data[self.at - 1]

    def varint(self) -> int:
        value = shift = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 70:
                raise FooterError("a malformed integer in the Parquet footer")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def field_header(self, last: int) -> tuple[int, int]:
        header = self.byte()
        kind, delta = header & 0x0F, header >> 4
        if kind == STOP:
            return STOP, last
        return kind, last + delta if delta else self.zigzag()

    def skip(self, kind: int, depth: int = 0) -> None:
        if depth > 32:
            raise FooterError("the Parquet footer nests too deep")
        if kind in (TRUE, FALSE):
            return
        if kind == BYTE:
            self.byte()
        elif kind in (I16, I32, I64):
            self.varint()
        elif kind == DOUBLE:
            self._advance(8)
        elif kind == BINARY:
            self._advance(self.varint())
        elif kind in (LIST, SET):
            header = self.byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            for _ in range(size):
                if element in (TRUE, FALSE):
                    self.byte()  # in a list a boolean takes a byte of its own
                else:
                    self.skip(element, depth + 1)
        elif kind == MAP:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.skip(types >> 4, depth + 1)
                    self.skip(types & 0x0F, depth + 1)
        elif kind == STRUCT:
            field = 0
            while True:
                inner, field = self.field_header(field)
                if inner == STOP:
                    return
                self.skip(inner, depth + 1)
        else:
            raise FooterError(f"an unknown Thrift type {kind} in the Parquet footer")

    def _advance(self, count: int) -> None:
        if self.at + count > len(self.data):
            raise FooterError("the Parquet footer ends too early")
        self.at += count
