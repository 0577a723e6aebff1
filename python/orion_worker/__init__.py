"""Orion's ONNX Runtime worker.

Run as ``python -m orion_worker --tensors NAME ...`` by ``orion-detector``, which talks to it
over stdin/stdout (4-byte big-endian length + MsgPack map, see ``protocol``). Modules:

- ``protocol``: message framing and size limits.
- ``tensors``: the shared-memory tensor slots the bridge fills (zero-copy numpy views).
- ``models``: ONNX Runtime sessions for the 640 and 320 inputs, validated on load.
- ``decode``: Ultralytics-layout output decoding and NMS.
- ``worker``: the request loop and background model swap.
"""
