"""A minimal caffemodel writer for the tests: the protobuf wire format of the four fields the reader takes,
and random weights in bottom-up-attention's layer layout (names, blob counts and shapes of its test.prototxt).

Written independently of ``faster_rcnn.convert.caffemodel`` (encoding, not decoding), so a round trip checks it.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterable, Iterator

import numpy as np

Layer = tuple[str, str, list[np.ndarray]]  # (name, type, blobs)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def blob_bytes(array: np.ndarray, legacy_shape: bool = False) -> bytes:
    """A BlobProto: ``shape`` (packed int64 dims) or the legacy num/channels/height/width, and packed float data."""
    array = np.asarray(array, dtype='<f4')
    if legacy_shape:
        dims = (1,) * (4 - array.ndim) + array.shape
        head = b''.join(field_varint(n, d) for n, d in zip((1, 2, 3, 4), dims))
    else:
        head = field_bytes(7, field_bytes(1, b''.join(varint(d) for d in array.shape)))
    return head + field_bytes(5, array.tobytes())


def layer_bytes(name: str, kind: str, blobs: list[np.ndarray], legacy: bool = False) -> bytes:
    """A LayerParameter (name 1, type 2, a bottom 3 to be skipped, blobs 7), or with ``legacy`` a
    V1LayerParameter (name 4, type 5 an enum, blobs 6) with legacy 4-d blob shapes."""
    if legacy:
        enum = {'Convolution': 4, 'InnerProduct': 14}.get(kind, 0)
        body = field_bytes(4, name.encode()) + field_varint(5, enum)
        return body + b''.join(field_bytes(6, blob_bytes(b, legacy_shape=True)) for b in blobs)
    body = field_bytes(1, name.encode()) + field_bytes(2, kind.encode()) + field_bytes(3, b'data')
    # An unknown fixed32 and fixed64 field (skipped by the reader), as later caffe.proto fields would be.
    body += varint(200 << 3 | 5) + struct.pack('<f', 1.0) + varint(201 << 3 | 1) + struct.pack('<d', 2.0)
    return body + b''.join(field_bytes(7, blob_bytes(b)) for b in blobs)


def write_caffemodel(out: BinaryIO, layers: Iterable[Layer], legacy: bool = False) -> None:
    """A NetParameter (name 1, then each layer as field 100, or field 2 with ``legacy``), streamed layer by layer."""
    out.write(field_bytes(1, b'butd-test'))
    number = 2 if legacy else 100
    for name, kind, blobs in layers:
        out.write(field_bytes(number, layer_bytes(name, kind, blobs, legacy)))


def caffe_unit(stage: int, index: int) -> str:
    if stage in (3, 4):
        return f'res{stage}a' if index == 0 else f'res{stage}b{index}'
    return f'res{stage}{"abc"[index] if index < 3 else chr(97 + index)}'


def butd_layers(rng: np.random.Generator, *, units=(3, 4, 23, 3), width: int = 64, num_classes: int = 1601,
                num_attributes: int = 401, extra_floats: int = 0) -> Iterator[Layer]:
    """BUTD's weighted layers (file order of test.prototxt) with random values: He-scaled convolutions, BatchNorm
    sums with a scale factor != 1, Scale gamma/beta, the RPN, the predictors, the attribute branch, and
    ``extra_floats`` values in training-only layers the converter must skip."""
    f32 = np.float32

    def conv(o: int, i: int, k: int) -> np.ndarray:
        return (rng.standard_normal((o, i, k, k), dtype=f32) * f32(np.sqrt(2.0 / (i * k * k))))

    def norm(c: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        factor = f32(rng.uniform(0.5, 1000.0))
        mean = rng.normal(0, 0.1, c).astype(f32) * factor
        var = rng.uniform(0.5, 1.5, c).astype(f32) * factor
        gamma = rng.uniform(0.3, 0.8, c).astype(f32)
        beta = rng.normal(0, 0.1, c).astype(f32)
        return [mean, var, np.array([factor], f32)], [gamma, beta]

    def conv_norm(name: str, suffix: str, o: int, i: int, k: int) -> Iterator[Layer]:
        yield name, 'Convolution', [conv(o, i, k)]
        stats, affine = norm(o)
        yield f'bn{suffix}', 'BatchNorm', stats
        yield f'scale{suffix}', 'Scale', affine

    yield from conv_norm('conv1', '_conv1', 64, 3, 7)
    channels = 64
    for s, count in enumerate(units):
        stage, mid, out = s + 2, width * 2 ** s, 256 * 2 ** s
        for i in range(count):
            name = caffe_unit(stage, i)
            if i == 0:
                yield from conv_norm(f'{name}_branch1', f'{name[3:]}_branch1', out, channels, 1)
            yield from conv_norm(f'{name}_branch2a', f'{name[3:]}_branch2a', mid, channels, 1)
            yield from conv_norm(f'{name}_branch2b', f'{name[3:]}_branch2b', mid, mid, 3)
            yield from conv_norm(f'{name}_branch2c', f'{name[3:]}_branch2c', out, mid, 1)
            channels = out
        if stage == 4:
            yield 'rpn_conv/3x3', 'Convolution', [conv(512, 1024, 3), rng.normal(0, 0.1, 512).astype(f32)]
            yield 'rpn_cls_score', 'Convolution', [conv(24, 512, 1), rng.normal(0, 0.5, 24).astype(f32)]
            yield 'rpn_bbox_pred', 'Convolution', [conv(48, 512, 1) * f32(0.1), rng.normal(0, 0.1, 48).astype(f32)]
    yield 'cls_score', 'InnerProduct', [rng.normal(0, 0.05, (num_classes, 2048)).astype(f32),
                                        rng.normal(0, 0.5, num_classes).astype(f32)]
    yield 'bbox_pred', 'InnerProduct', [rng.normal(0, 0.01, (4 * num_classes, 2048)).astype(f32),
                                        rng.normal(0, 0.1, 4 * num_classes).astype(f32)]
    if num_attributes:
        yield 'cls_embedding', 'Embed', [rng.normal(0, 0.1, (num_classes, 256)).astype(f32)]
        yield 'fc_attr', 'InnerProduct', [rng.normal(0, 0.03, (512, 2048 + 256)).astype(f32),
                                          rng.normal(0, 0.1, 512).astype(f32)]
        yield 'attr_score', 'InnerProduct', [rng.normal(0, 0.05, (num_attributes, 512)).astype(f32),
                                             rng.normal(0, 0.1, num_attributes).astype(f32)]
    # Training-only layers of the released file (relation head): never read by the converter.
    yield 'fc_rel1', 'InnerProduct', [np.ones(max(extra_floats // 2, 4), f32), np.ones(4, f32)]
    yield 'rel_score', 'InnerProduct', [np.full(max(extra_floats - extra_floats // 2, 4), 7.0, f32)]
