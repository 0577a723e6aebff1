"""The tensor buffer the bridge fills: a sealed memfd handed down as a file descriptor
(``--tensors-fd``, how orion-detector runs the worker), or a POSIX shared-memory object by
name (``--tensors``, for tests and tools). See detector-bridge/README.md for the layout.

Header (little-endian): magic u64 ``ORIONTNS``, version u32, slot count u32, slot bytes
u64, data offset u64. Slot ``i`` starts at ``data_offset + i * slot_bytes`` and holds one
float32 NCHW tensor ``[1, 3, S, S]`` for the ``S`` named in the infer request."""

import mmap
import os
import struct

import numpy as np

MAGIC = int.from_bytes(b"ORIONTNS", "little")
VERSION = 1
HEADER = struct.Struct("<QIIQQ")


class TensorError(Exception):
    pass


class TensorBuffer:
    def __init__(self, name=None, fd=None):
        if (name is None) == (fd is None):
            raise TensorError("give the tensor buffer's name or its file descriptor, not both")
        if name is not None:
            if not name.startswith("/") or "/" in name[1:]:
                raise TensorError(f"tensor buffer name {name!r} must look like /orion-ID-tensors")
            label = name
            try:
                fd = os.open("/dev/shm" + name, os.O_RDONLY)
            except OSError as exc:
                raise TensorError(f"cannot open tensor buffer {name}: {exc.strerror}") from None
        else:
            label = f"fd {fd}"
            if fd < 3:
                raise TensorError(f"tensor buffer fd must be 3 or more, got {fd}")
        try:
            try:
                size = os.fstat(fd).st_size
            except OSError as exc:
                raise TensorError(f"cannot use tensor buffer {label}: {exc.strerror}") from None
            if size < HEADER.size:
                raise TensorError(f"tensor buffer {label} is truncated ({size} bytes)")
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            # The mapping keeps the memory; the descriptor is not needed any more.
            os.close(fd)
        name = label
        magic, version, slots, slot_bytes, offset = HEADER.unpack_from(self._map, 0)
        if magic != MAGIC:
            raise TensorError(f"{name} is not an Orion tensor buffer")
        if version != VERSION:
            raise TensorError(f"{name} has tensor ABI version {version}, this worker speaks {VERSION}")
        if offset + slots * slot_bytes > size:
            raise TensorError(f"{name} is truncated: header describes {offset + slots * slot_bytes} bytes, object has {size}")
        self.slots, self.slot_bytes, self.offset = slots, slot_bytes, offset

    def view(self, slot, imgsz):
        """A read-only float32 view ``[1, 3, imgsz, imgsz]`` of ``slot`` (no copy)."""
        if not isinstance(slot, int) or not 0 <= slot < self.slots:
            raise TensorError(f"slot must be 0..{self.slots - 1}, got {slot!r}")
        count = 3 * imgsz * imgsz
        if count * 4 > self.slot_bytes:
            raise TensorError(f"a {imgsz}x{imgsz} tensor does not fit a {self.slot_bytes}-byte slot")
        array = np.frombuffer(self._map, dtype=np.float32, count=count, offset=self.offset + slot * self.slot_bytes)
        return array.reshape(1, 3, imgsz, imgsz)
