"""A reader of TensorFlow checkpoints (the TensorBundle format, ``tf.train.Saver``'s V2 files), without TensorFlow.

A checkpoint ``P`` is ``P.index``, a LevelDB-format table mapping each tensor name to a BundleEntryProto
(dtype, shape, shard, offset, size, crc32c), and the shards ``P.data-0000K-of-0000N`` holding the raw
little-endian C-order bytes. ``P.meta`` (the graph) is not needed.

The table's layout: data blocks, a metaindex block, an index block, then a 48-byte footer (two block
handles, zero padding, the magic number). Each block is followed by a compression byte (TensorFlow writes
0, none) and the masked crc32c of block + byte; its entries are prefix-compressed keys with values, then the
restart offsets. Every block read and every tensor read is checked against its crc32c, so a truncated or
damaged file is an error naming the file, never a silently wrong weight.

    >>> bundle = TensorBundle('output/res101/.../res101_faster_rcnn_iter_110000.ckpt')
    >>> bundle.shape('resnet_v1_101/conv1/weights')
    (7, 7, 3, 64)
    >>> w = bundle.read('resnet_v1_101/conv1/weights')      # np.ndarray float32, verified
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointFormatError
from ._crc32c import crc32c, mask

__all__ = ['TensorBundle', 'BundleEntry', 'CheckpointFormatError', 'resolve_checkpoint_prefix']

_MAGIC = 0xdb4775248b80fb57
_FOOTER = 48

# TensorFlow DataType enum -> numpy dtype (little endian). bfloat16 has no numpy type: read as its bits.
_DTYPES = {1: '<f4', 2: '<f8', 3: '<i4', 4: 'u1', 5: '<i2', 6: 'i1', 8: '<c8', 9: '<i8', 10: '?', 14: '<u2',
           17: '<u2', 18: '<c16', 19: '<f2', 22: '<u4', 23: '<u8'}
_DTYPE_NAMES = {1: 'float32', 2: 'float64', 3: 'int32', 4: 'uint8', 5: 'int16', 6: 'int8', 7: 'string',
                8: 'complex64', 9: 'int64', 10: 'bool', 14: 'bfloat16', 17: 'uint16', 18: 'complex128', 19: 'float16',
                20: 'resource', 21: 'variant', 22: 'uint32', 23: 'uint64'}
_BFLOAT16 = 14




@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lies: its dtype (TensorFlow enum), shape, shard and byte range, and crc32c."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int | None
    sliced: bool = False

    @property
    def dtype_name(self) -> str:
        return _DTYPE_NAMES.get(self.dtype, f'dtype {self.dtype}')


# --- protobuf and LevelDB primitives --------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the base-128 varint at ``buf[pos:]``."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise IndexError('varint runs past the end')
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError('varint longer than 10 bytes')


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of a serialised protobuf message; length-delimited values
    are bytes, fixed32/fixed64 are ints."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from('<Q', buf, pos)[0]
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value = buf[pos:pos + n]
            if len(value) != n:
                raise IndexError('length-delimited field runs past the end')
            pos += n
        elif wire == 5:
            value = struct.unpack_from('<I', buf, pos)[0]
            pos += 4
        else:
            raise ValueError(f'unsupported protobuf wire type {wire}')
        yield field, wire, value


def _block_handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def _block_entries(block: bytes):
    """Yield (key, value) of a LevelDB block (entries, restart array, restart count)."""
    if len(block) < 4:
        raise ValueError('block shorter than its restart count')
    num_restarts = struct.unpack_from('<I', block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    if end < 0:
        raise ValueError('restart array larger than the block')
    pos, key = 0, b''
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > end:
            raise ValueError('entry runs past the end of its block')
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, _, value in _fields(buf):
        if field == 2:  # Dim {int64 size = 1; string name = 2;}
            size = 0
            for f, _, v in _fields(value):
                if f == 1:
                    size = _signed64(v)
            dims.append(size)
        elif field == 3 and value:
            raise ValueError('tensor of unknown rank')
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> BundleEntry:
    shape: tuple[int, ...] = ()
    dtype, shard, offset, size, crc, sliced = 0, 0, 0, 0, None, False
    for field, _, value in _fields(buf):
        if field == 1:
            dtype = value
        elif field == 2:
            shape = _parse_shape(value)
        elif field == 3:
            shard = value
        elif field == 4:
            offset = _signed64(value)
        elif field == 5:
            size = _signed64(value)
        elif field == 6:
            crc = value
        elif field == 7:
            sliced = True
    return BundleEntry(name, dtype, shape, shard, offset, size, crc, sliced)


# --- the reader ------------------------------------------------------------------------------------------

def resolve_checkpoint_prefix(path: str) -> str:
    """The checkpoint prefix ``P`` for ``P`` itself, ``P.index``, ``P.data-*`` or a folder holding one ``.index``.

    Raises FileNotFoundError (naming what was looked for) or CheckpointFormatError (a folder with several).
    """
    path = osp.expanduser(path)
    if osp.isdir(path):
        found = sorted(glob.glob(osp.join(glob.escape(path), '*.index')))
        if not found:
            raise FileNotFoundError(f'{path}: the folder holds no TensorFlow checkpoint (*.index file)')
        if len(found) > 1:
            names = ', '.join(osp.basename(f) for f in found)
            raise CheckpointFormatError(f'{path}: the folder holds several checkpoints ({names}); pass one of '
                                        'them (its .index file or its prefix)')
        return found[0][:-len('.index')]
    if path.endswith('.index'):
        prefix = path[:-len('.index')]
    elif '.data-' in osp.basename(path):
        prefix = path[:path.rindex('.data-')]
    else:
        prefix = path
    if not osp.isfile(prefix + '.index'):
        raise FileNotFoundError(f'{prefix}.index does not exist: pass a TensorFlow checkpoint prefix '
                                '(…ckpt), its .index file or the folder holding it')
    return prefix


class TensorBundle:
    """The tensors of the checkpoint ``prefix`` (see ``resolve_checkpoint_prefix`` for what it may be)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = resolve_checkpoint_prefix(prefix)
        self.index_path = self.prefix + '.index'
        with open(self.index_path, 'rb') as f:
            index = f.read()
        self._entries: dict[str, BundleEntry] = {}
        self._scratch = np.empty(0, dtype=np.uint8)
        self.num_shards = 1
        try:
            self._parse_index(index)
        except CheckpointFormatError:
            raise
        except (ValueError, IndexError, struct.error) as e:
            raise CheckpointFormatError(f'{self.index_path}: damaged TensorFlow checkpoint index ({e})') from None
        self._check_shards()

    # -- index --
    def _read_block(self, index: bytes, offset: int, size: int, what: str) -> bytes:
        end = offset + size
        if offset < 0 or end + 5 > len(index):
            raise CheckpointFormatError(f'{self.index_path}: truncated ({what} block at bytes {offset}..{end + 5}, '
                                        f'the file has {len(index)}); copy or download it again')
        block, ctype = index[offset:end], index[end]
        stored = struct.unpack_from('<I', index, end + 1)[0]
        if mask(crc32c(index[offset:end + 1])) != stored:
            raise CheckpointFormatError(f'{self.index_path}: the {what} block at byte {offset} fails its crc32c '
                                        'check: the file is damaged; copy or download it again')
        if ctype != 0:
            raise CheckpointFormatError(f'{self.index_path}: {what} block compressed with type {ctype}; '
                                        'TensorFlow checkpoints are uncompressed, so this is not one')
        return block

    def _parse_index(self, index: bytes) -> None:
        if len(index) < _FOOTER or struct.unpack_from('<Q', index, len(index) - 8)[0] != _MAGIC:
            raise CheckpointFormatError(f'{self.index_path} is not a TensorFlow checkpoint index (no table '
                                        'footer): is it truncated, or another kind of file?')
        footer = index[len(index) - _FOOTER:]
        _, _, pos = _block_handle(footer)           # metaindex: TensorFlow writes it empty
        idx_offset, idx_size, _ = _block_handle(footer, pos)
        header_seen = False
        for _, handle in _block_entries(self._read_block(index, idx_offset, idx_size, 'index')):
            offset, size, _ = _block_handle(handle)
            for key, value in _block_entries(self._read_block(index, offset, size, 'data')):
                if key == b'':
                    self._parse_header(value)
                    header_seen = True
                    continue
                name = key.decode('utf-8')
                self._entries[name] = _parse_entry(name, value)
        if not header_seen:
            raise CheckpointFormatError(f'{self.index_path}: no bundle header: not a TensorFlow checkpoint')

    def _parse_header(self, buf: bytes) -> None:
        endianness = 0
        for field, _, value in _fields(buf):
            if field == 1:
                self.num_shards = value
            elif field == 2:
                endianness = value
        if endianness != 0:
            raise CheckpointFormatError(f'{self.index_path}: written by a big-endian machine; only '
                                        'little-endian checkpoints are supported')
        if self.num_shards < 1:
            raise CheckpointFormatError(f'{self.index_path}: bundle header says {self.num_shards} shards')

    def shard_path(self, shard: int) -> str:
        return f'{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}'

    def _check_shards(self) -> None:
        missing = [self.shard_path(k) for k in range(self.num_shards) if not osp.isfile(self.shard_path(k))]
        if missing:
            raise FileNotFoundError(f'{self.index_path}: data file {missing[0]} is missing'
                                    f'{f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""}; '
                                    'copy every file of the checkpoint')

    # -- tensors --
    def names(self) -> list[str]:
        """Every tensor name, sorted (the index's order)."""
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def entry(self, name: str) -> BundleEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f'{self.prefix}: no tensor {name!r}') from None

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entry(name).shape

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: e.shape for n, e in sorted(self._entries.items())}

    def read(self, name: str, *, scratch: bool = False) -> np.ndarray:
        """The tensor ``name`` as a numpy array (bfloat16 widened exactly to float32), crc32c-checked.

        ``scratch``: read into one buffer reused from call to call and return a view of it, valid until the
        next scratch read: a converter that transposes every tensor anyway then allocates each tensor once,
        and the process does not grow by the freed reading buffers.
        """
        e = self.entry(name)
        if e.sliced:
            raise CheckpointFormatError(f'{self.prefix}: tensor {name} is saved in slices (a partitioned '
                                        'variable), which this reader does not support')
        if e.dtype not in _DTYPES:
            raise CheckpointFormatError(f'{self.prefix}: tensor {name} has dtype {e.dtype_name}, which is not a '
                                        'numeric weight')
        dtype = np.dtype(_DTYPES[e.dtype])
        count = int(np.prod(e.shape, dtype=np.int64))
        if count * dtype.itemsize != e.size:
            raise CheckpointFormatError(f'{self.index_path}: tensor {name} of shape {list(e.shape)} '
                                        f'({e.dtype_name}) claims {e.size} bytes')
        path = self.shard_path(e.shard)
        if scratch:
            if self._scratch.size < e.size:
                self._scratch = np.empty(e.size, dtype=np.uint8)
            raw = self._scratch[:e.size]
        else:
            raw = np.empty(e.size, dtype=np.uint8)
        with open(path, 'rb') as f:
            f.seek(e.offset)
            # An ndarray is a buffer; numpy's stubs for Python 3.11 do not declare it.
            got = f.readinto(memoryview(raw)) if e.size else 0  # type: ignore[arg-type]
        if got != e.size:
            have = os.path.getsize(path)
            raise CheckpointFormatError(f'{path} is truncated: tensor {name} needs bytes {e.offset}..'
                                        f'{e.offset + e.size}, the file has {have}; copy or download it again')
        if e.crc is not None and mask(crc32c(raw)) != e.crc:
            raise CheckpointFormatError(f'{path}: tensor {name} fails its crc32c check: the file is damaged; '
                                        'copy or download it again')
        array = raw.view(dtype).reshape(e.shape)
        if e.dtype == _BFLOAT16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array
