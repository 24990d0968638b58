"""Objects kept as compact bytes between the time they are read and the time they are used.

Git's desired state lives for a whole run, and as Python dicts a small manifest costs about
5 KB: 100,000 of them were half a gigabyte. As orjson bytes the same object is ~450 bytes,
and decoding one (a few microseconds) happens only when the comparison needs it, which in a
steady-state run is for the few objects whose verdict cannot be reused.

:func:`pack` and :func:`unpack` round-trip exactly what the YAML parser produces. The rare
value JSON cannot carry (an integer past 64 bits, a ``!!binary`` scalar, a non-string key)
falls back to pickle, in memory only: :func:`portable` tells callers that write bytes to disk
(the parse cache) to leave such objects out.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import orjson

# Every pickle starts with the PROTO opcode; a JSON text never starts with this byte.
_PICKLE = b"\x80"


def dumps(obj: Any) -> bytes:
    """``orjson.dumps`` for bytes that will be held: orjson's own keep its whole working
    buffer (~6 KB for a 500-byte object); a right-sized copy is a tenth of the memory and,
    the buffer freed at once, faster. Raises ``TypeError`` as orjson does."""
    return memoryview(orjson.dumps(obj)).tobytes()


def pack(obj: Any) -> bytes:
    """``obj`` as bytes :func:`unpack` turns back into an equal object."""
    try:
        return dumps(obj)
    except TypeError:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(raw: bytes) -> Any:
    """A fresh object from :func:`pack`'s bytes (callers may change it freely)."""
    if raw[:1] == _PICKLE:
        return pickle.loads(raw)  # only ever bytes this process packed itself
    return orjson.loads(raw)


def portable(raw: bytes) -> bool:
    """Whether ``raw`` is plain JSON, safe to store and read back in another process."""
    return raw[:1] != _PICKLE


def digest(raw: bytes) -> str:
    """A short content digest of packed bytes (the same object packs to the same bytes)."""
    return hashlib.sha1(raw).hexdigest()
