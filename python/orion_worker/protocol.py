"""Message framing: every message is a 4-byte big-endian length, then a MsgPack map with a
``type`` key. Oversized or malformed frames raise ``ProtocolError``; the worker answers
those with an ``error`` message instead of crashing."""

import struct

import msgpack

MAX_MESSAGE = 1 << 20  # requests are small; 1 MiB bounds any mistake


class ProtocolError(Exception):
    """A frame that could not be read as a message (the stream itself is still in sync)."""


class StreamClosed(Exception):
    """The peer closed the stream."""


def _read_exact(stream, n):
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise StreamClosed()
        data.extend(chunk)
    return bytes(data)


def read_message(stream):
    """Reads one message; raises StreamClosed at end of stream, ProtocolError if the frame
    is not a MsgPack map with a string ``type`` (the frame is consumed either way)."""
    (length,) = struct.unpack(">I", _read_exact(stream, 4))
    if length > MAX_MESSAGE:
        # Skip the body so the next frame is read in sync.
        remaining = length
        while remaining:
            remaining -= len(_read_exact(stream, min(remaining, 1 << 16)))
        raise ProtocolError(f"message of {length} bytes exceeds the {MAX_MESSAGE}-byte limit")
    body = _read_exact(stream, length)
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # any decoding failure is the peer's fault, not ours
        raise ProtocolError(f"not MsgPack: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("message must be a map with a string 'type'")
    return message


def encode_message(message):
    body = msgpack.packb(message, use_bin_type=True)
    return struct.pack(">I", len(body)) + body
