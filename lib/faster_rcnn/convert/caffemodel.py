"""A Caffe ``.caffemodel`` read without Caffe or protoc: a protobuf wire-format reader of the weight fields.

A caffemodel is a binary ``caffe.NetParameter``. The weights need only (field numbers of ``caffe.proto``):

- ``NetParameter.layer = 100`` (``LayerParameter``: ``name = 1``, ``type = 2``, ``blobs = 7``), or the legacy
  ``NetParameter.layers = 2`` (``V1LayerParameter``: ``name = 4``, ``type = 5`` an enum, ``blobs = 6``);
- ``BlobProto``: ``shape = 7`` (``BlobShape.dim = 1``, packed int64), ``data = 5`` (packed float),
  ``double_data = 8`` (packed double), legacy ``num, channels, height, width = 1..4``.

Every other field is skipped by its wire type. The file is memory-mapped: a blob's data is a NumPy view of the
mapped pages (``np.frombuffer``), so nothing is copied and the pages of layers nobody reads (BUTD's
training-only layers) are never loaded.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import numpy as np

from faster_rcnn.errors import ModelFileError

__all__ = ['CaffeBlob', 'CaffeLayer', 'CaffeLayers', 'read_caffemodel']

# Wire types.
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class CaffeBlob:
    """One blob: its shape and its values (float32, C order; a view of the mapped file when stored as float)."""

    shape: tuple[int, ...]
    data: np.ndarray

    def array(self) -> np.ndarray:
        """The values in ``shape`` (a view, no copy)."""
        return self.data.reshape(self.shape)


@dataclass(frozen=True)
class CaffeLayer:
    name: str
    type: str
    blobs: tuple[CaffeBlob, ...]


class CaffeLayers(dict):
    """Layer name -> ``CaffeLayer`` (file order), with the memory map their blobs view."""

    def __init__(self, mapping: mmap.mmap) -> None:
        super().__init__()
        self._mapping = mapping

    def drop_pages(self) -> None:
        """Let the kernel drop the mapped pages read so far (they count as this process's memory until then);
        reading a blob again maps its pages back in from the file."""
        if hasattr(mmap, 'MADV_DONTNEED'):
            self._mapping.madvise(mmap.MADV_DONTNEED)


class _Malformed(Exception):
    """A malformed message: the reader's own error, turned into a ModelFileError naming the file."""


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed(f'a varint runs past its message at byte {pos}')
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int):
    """Yield (field number, wire type, value, start, end) of each field of the message buf[start:end]: value is
    the integer of a varint, None otherwise; (start, end) the payload of a length-delimited or fixed field."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos, pos
        elif wire == _BYTES:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed(f'field {number} at byte {pos} claims {length} bytes, past its message end {end}')
            yield number, wire, None, pos, pos + length
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > end:
                raise _Malformed(f'field {number} at byte {pos} runs past its message end {end}')
            yield number, wire, None, pos, pos + size
            pos += size
        else:
            raise _Malformed(f'unsupported wire type {wire} (field {number}) at byte {pos}')


def _packed_varints(buf: memoryview, start: int, end: int) -> list[int]:
    values, pos = [], start
    while pos < end:
        v, pos = _varint(buf, pos, end)
        values.append(v)
    return values


def _blob_shape(buf: memoryview, start: int, end: int) -> list[int]:
    dims: list[int] = []
    for number, wire, value, a, b in _fields(buf, start, end):
        if number == 1:
            dims.extend(_packed_varints(buf, a, b) if wire == _BYTES else [int(value)])
    return dims


def _blob(raw: mmap.mmap, buf: memoryview, start: int, end: int) -> CaffeBlob:
    """A BlobProto: its shape (``shape`` or the legacy 4-d fields) and a float32 view of its data."""
    shape: list[int] | None = None
    legacy = {1: 1, 2: 1, 3: 1, 4: 1}
    has_legacy = False
    chunks: list[np.ndarray] = []
    singles: list[float] = []
    for number, wire, value, a, b in _fields(buf, start, end):
        if number == 7 and wire == _BYTES:
            shape = _blob_shape(buf, a, b)
        elif number in legacy and wire == _VARINT:
            legacy[number] = int(value)
            has_legacy = True
        elif number == 5 and wire == _BYTES:  # packed float: a view of the mapped file
            if (b - a) % 4:
                raise _Malformed(f'packed float data of {b - a} bytes at byte {a}')
            chunks.append(np.frombuffer(raw, dtype='<f4', count=(b - a) // 4, offset=a))
        elif number == 5 and wire == _FIXED32:  # unpacked float (proto2 files written without packing)
            singles.append(float(np.frombuffer(raw, dtype='<f4', count=1, offset=a)[0]))
        elif number == 8 and wire == _BYTES:  # packed double
            if (b - a) % 8:
                raise _Malformed(f'packed double data of {b - a} bytes at byte {a}')
            chunks.append(np.frombuffer(raw, dtype='<f8', count=(b - a) // 8, offset=a).astype(np.float32))
    if singles:
        chunks.append(np.asarray(singles, dtype=np.float32))
    data = chunks[0] if len(chunks) == 1 else (np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
    if shape is None:
        shape = [legacy[i] for i in (1, 2, 3, 4)] if has_legacy else [int(data.size)]
    if int(np.prod(shape, dtype=np.int64)) != data.size:
        raise _Malformed(f'a blob of shape {shape} holds {data.size} values (byte {start})')
    return CaffeBlob(tuple(int(d) for d in shape), data)


# V1LayerParameter.LayerType values of the layers that carry weights (caffe.proto).
_V1_TYPES = {4: 'Convolution', 14: 'InnerProduct', 39: 'Deconvolution'}


def _layer(raw: mmap.mmap, buf: memoryview, start: int, end: int, legacy: bool) -> CaffeLayer:
    name_field, type_field, blobs_field = (4, 5, 6) if legacy else (1, 2, 7)
    name, kind, blobs = '', '', []
    for number, wire, value, a, b in _fields(buf, start, end):
        if number == name_field and wire == _BYTES:
            name = bytes(buf[a:b]).decode('utf-8', 'replace')
        elif number == type_field:
            if wire == _BYTES:
                kind = bytes(buf[a:b]).decode('utf-8', 'replace')
            elif wire == _VARINT:
                kind = _V1_TYPES.get(int(value), f'V1:{value}')
        elif number == blobs_field and wire == _BYTES:
            blobs.append(_blob(raw, buf, a, b))
    return CaffeLayer(name, kind, tuple(blobs))


def read_caffemodel(path: str) -> CaffeLayers:
    """The layers of the caffemodel ``path`` that hold blobs, by name (file order), blob data as views of the
    memory-mapped file. A ModelFileError names the file when it is missing, empty or not a NetParameter."""
    try:
        with open(path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ModelFileError(f'{path} is empty: download the caffemodel again')
            raw = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise ModelFileError(f'{path} does not exist: pass the .caffemodel file (data/scripts/fetch_butd_model.py '
                             'downloads it)') from None
    except OSError as e:
        raise ModelFileError(f'{path} cannot be read ({e.strerror})') from None
    buf = memoryview(raw)
    layers = CaffeLayers(raw)
    try:
        for number, wire, _, a, b in _fields(buf, 0, size):
            if wire == _BYTES and number in (100, 2):
                layer = _layer(raw, buf, a, b, legacy=number == 2)
                if layer.blobs:
                    if layer.name in layers:
                        raise _Malformed(f'two layers named {layer.name!r} hold weights')
                    layers[layer.name] = layer
    except _Malformed as e:
        raise ModelFileError(f'{path} cannot be read as a Caffe NetParameter ({e}); is it truncated, or not a '
                             '.caffemodel?') from None
    finally:
        buf.release()  # the blobs' arrays keep the mapping open as long as they live
    if not layers:
        raise ModelFileError(f'{path} holds no layer with weights: is it a .caffemodel (not a .prototxt)?')
    return layers
