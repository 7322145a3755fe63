"""A writer of TensorFlow checkpoints (TensorBundle V2), for tests: synthetic checkpoints in the exact format of
the published tf-faster-rcnn models without TensorFlow.

Written as TensorFlow's BundleWriter does: tensors back to back in ``P.data-0000K-of-0000N``; ``P.index`` a
LevelDB table (uncompressed blocks with masked crc32c trailers, restart points every 16 entries) whose first
key is "" (the BundleHeaderProto) followed by the tensor names in sorted order, each with a BundleEntryProto.
"""
from __future__ import annotations

import struct
from typing import Mapping

import numpy as np

from faster_rcnn.convert._crc32c import crc32c, mask

_MAGIC = 0xdb4775248b80fb57
_NUMPY_TO_TF = {np.dtype('<f4'): 1, np.dtype('<f8'): 2, np.dtype('<i4'): 3, np.dtype('u1'): 4, np.dtype('<i2'): 5,
                np.dtype('i1'): 6, np.dtype('<i8'): 9, np.dtype('?'): 10, np.dtype('<f2'): 19}
BFLOAT16 = 14


def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(field: int, v: int) -> bytes:
    return _varint(field << 3) + _varint(v)


def _field_bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _field_fixed32(field: int, v: int) -> bytes:
    return _varint(field << 3 | 5) + struct.pack('<I', v)


def _entry_proto(dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, crc: int) -> bytes:
    shape_msg = b''.join(_field_bytes(2, _field_varint(1, d) if d else b'') for d in shape)
    out = _field_varint(1, dtype) + _field_bytes(2, shape_msg)
    if shard:
        out += _field_varint(3, shard)
    if offset:
        out += _field_varint(4, offset)
    if size:
        out += _field_varint(5, size)
    return out + _field_fixed32(6, crc)


def _header_proto(num_shards: int) -> bytes:
    return _field_varint(1, num_shards) + _field_bytes(3, _field_varint(1, 1))


class _BlockBuilder:
    def __init__(self, restart_interval: int = 16) -> None:
        self.buf = bytearray()
        self.restarts = [0]
        self.count = 0
        self.last = b''
        self.interval = restart_interval

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count % self.interval == 0 and self.count:
            self.restarts.append(len(self.buf))
        elif self.count:
            while shared < min(len(key), len(self.last)) and key[shared] == self.last[shared]:
                shared += 1
        self.buf += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        self.last = key
        self.count += 1

    def finish(self) -> bytes:
        return bytes(self.buf) + b''.join(struct.pack('<I', r) for r in self.restarts) + \
            struct.pack('<I', len(self.restarts))


def _append_block(out: bytearray, block: bytes) -> bytes:
    """Append a block and its trailer to ``out``; returns its BlockHandle."""
    handle = _varint(len(out)) + _varint(len(block))
    trailer_type = b'\x00'
    out += block + trailer_type + struct.pack('<I', mask(crc32c(block + trailer_type)))
    return handle


def write_bundle(prefix: str, tensors: Mapping[str, np.ndarray], *, num_shards: int = 1,
                 block_size: int = 262144, dtypes: Mapping[str, int] | None = None) -> None:
    """Write ``tensors`` (name -> array) as the checkpoint ``prefix``.

    ``num_shards`` > 1 deals the tensors round-robin over the data files; ``block_size`` is the index table's
    target block size (small values make many blocks); ``dtypes`` overrides the TensorFlow dtype of a
    tensor (``BFLOAT16`` for uint16 arrays holding bfloat16 bits).
    """
    dtypes = dict(dtypes or {})
    names = sorted(tensors)
    offsets = [0] * num_shards
    entries = {}
    files = [open(f'{prefix}.data-{k:05d}-of-{num_shards:05d}', 'wb') for k in range(num_shards)]
    try:
        for i, name in enumerate(names):
            a = np.asarray(tensors[name])
            if not a.flags.c_contiguous:
                a = a.copy(order="C")
            dtype = dtypes.get(name, _NUMPY_TO_TF.get(a.dtype.newbyteorder('<') if a.dtype.byteorder == '>' else a.dtype))
            if dtype is None:
                raise ValueError(f'no TensorFlow dtype for {name} ({a.dtype})')
            shard = i % num_shards
            raw = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
            files[shard].write(memoryview(raw))
            entries[name] = _entry_proto(dtype, tuple(a.shape), shard, offsets[shard], raw.size, mask(crc32c(raw)))
            offsets[shard] += raw.size
    finally:
        for f in files:
            f.close()

    out = bytearray()
    index = _BlockBuilder(restart_interval=1)
    block = _BlockBuilder()
    for key, value in [(b'', _header_proto(num_shards))] + [(n.encode(), entries[n]) for n in names]:
        block.add(key, value)
        if len(block.buf) >= block_size:
            index.add(key, _append_block(out, block.finish()))
            block = _BlockBuilder()
    if block.count:
        index.add(block.last, _append_block(out, block.finish()))
    meta_handle = _append_block(out, _BlockBuilder().finish())
    index_handle = _append_block(out, index.finish())
    footer = (meta_handle + index_handle).ljust(40, b'\x00') + struct.pack('<Q', _MAGIC)
    with open(prefix + '.index', 'wb') as f:
        f.write(bytes(out) + footer)
