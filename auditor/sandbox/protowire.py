"""Reading the Kubernetes protobuf envelope, for the few request bodies kubectl only sends so.

The sandbox speaks JSON, but kubectl's typed clients (``kubectl create token``, ``kubectl auth
whoami``) send ``application/vnd.kubernetes.protobuf``: the 4-byte magic ``k8s\\0`` then a
``runtime.Unknown`` message (apimachinery ``pkg/runtime/generated.proto``: ``typeMeta = 1``
{``apiVersion = 1``, ``kind = 2``}, ``raw = 2``, ``contentEncoding = 3``, ``contentType =
4``) whose ``raw`` is the object's own message. This module reads the wire format (varints and
length-delimited fields, https://protobuf.dev/programming-guides/encoding/) far enough to
pull fields out of those messages; it writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """The bytes are not the protobuf message they were taken for."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` for each field of a message: ints for varints and fixed
    fields, bytes for length-delimited ones (strings, nested messages, packed lists)."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            yield number, data[pos:pos + length]
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > len(data):
                raise ProtobufError("truncated field")
            yield number, int.from_bytes(data[pos:pos + size], "little")
            pos += size
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """``(apiVersion, kind, raw)`` of a ``k8s\\0``-framed ``runtime.Unknown``."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic number")
    api_version = kind = ""
    raw = b""
    for number, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for sub, text in fields(value):
                if isinstance(text, bytes):
                    if sub == 1:
                        api_version = text.decode()
                    elif sub == 2:
                        kind = text.decode()
        elif number == 2 and isinstance(value, bytes):
            raw = value
    return api_version, kind, raw


def to_int64(value: int) -> int:
    """A varint read as Go's ``int64`` (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value
