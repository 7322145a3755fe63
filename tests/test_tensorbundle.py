"""The TensorFlow checkpoint reader: checksums, the LevelDB table, dtypes, shards, and every way a file can be wrong.

Checked against checkpoints TensorFlow itself wrote (tests/data/tf_written/, with the values TensorFlow's own
reader returned) and against the test writer (tests/tensorbundle_writer.py) for the cases TF would not write.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from faster_rcnn.convert._crc32c import crc32c, mask
from faster_rcnn.convert.tensorbundle import CheckpointFormatError, TensorBundle, resolve_checkpoint_prefix
from tensorbundle_writer import BFLOAT16, write_bundle

TF_WRITTEN = Path(__file__).resolve().parent / 'data' / 'tf_written'


def _crc32c_bitwise(data: bytes) -> int:
    """The textbook definition, one bit at a time (the reference for the table-driven kernel)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_values_and_chaining():
    assert crc32c(b'123456789') == 0xE3069283          # the standard check value of CRC-32C
    assert crc32c(b'') == 0
    assert crc32c(bytes(32)) == 0x8A9136AA              # RFC 3720 (iSCSI) test vector: 32 zero bytes
    assert crc32c(bytes(range(32))) == 0x46DD794E        # RFC 3720: bytes 0..31
    data = np.random.default_rng(0).integers(0, 256, 10_003, dtype=np.uint8).tobytes()
    assert crc32c(data) == _crc32c_bitwise(data)
    assert crc32c(data[5000:], crc32c(data[:5000])) == crc32c(data)
    assert crc32c(data) != zlib.crc32(data)  # not the zip polynomial


def test_mask_is_tensorflows_rotation():
    for c in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert mask(c) == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _all_dtypes() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        'a/float32': rng.standard_normal((2, 3, 4, 5)).astype(np.float32),
        'a/float64': rng.standard_normal(7),
        'a/float16': rng.standard_normal(6).astype(np.float16),
        'b/int8': np.array([-128, 0, 127], np.int8),
        'b/int16': np.array([-32768, 5, 32767], np.int16),
        'b/int32': np.arange(-3, 3, dtype=np.int32),
        'b/int64': np.array([-(2 ** 62), 2 ** 40], np.int64),
        'b/uint8': np.array([0, 255, 7], np.uint8),
        'c/bool': np.array([True, False, True]),
        'c/scalar': np.array(3.25, np.float32),
        'c/empty': np.zeros((0, 3), np.float32),
    }


def test_round_trip_every_dtype_many_blocks_and_shards(tmp_path):
    tensors = _all_dtypes()
    tensors.update({f'many/v{i:04d}/weights': np.full((i % 4 + 1,), i, np.float32) for i in range(600)})
    write_bundle(str(tmp_path / 'x.ckpt'), tensors, num_shards=3, block_size=512)
    bundle = TensorBundle(str(tmp_path / 'x.ckpt'))
    assert bundle.num_shards == 3 and bundle.names() == sorted(tensors)
    for name, value in tensors.items():
        got = bundle.read(name)
        assert got.dtype == value.dtype and got.shape == value.shape, name
        np.testing.assert_array_equal(got, value, err_msg=name)


def test_bfloat16_is_widened_exactly(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 1e-3], np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    write_bundle(str(tmp_path / 'b.ckpt'), {'w': bits}, dtypes={'w': BFLOAT16})
    got = TensorBundle(str(tmp_path / 'b.ckpt')).read('w')
    np.testing.assert_array_equal(got, (bits.astype(np.uint32) << 16).view(np.float32))


@pytest.mark.parametrize('ckpt', ['mixed', 'sharded'])
def test_reads_checkpoints_written_by_tensorflow(ckpt):
    """Every tensor equals what tf.train.load_checkpoint returned for it (tests/data/tf_written/values.npz)."""
    expected = np.load(TF_WRITTEN / 'values.npz')
    bundle = TensorBundle(str(TF_WRITTEN / f'{ckpt}.ckpt'))
    keys = [k for k in expected.files if k.startswith(f'{ckpt}::')]
    assert keys, f'no expected values for {ckpt}'
    names = set()
    for key in keys:
        name = key.split('::')[1]
        names.add(name)
        want = expected[key]
        got = bundle.read(name)
        if key.endswith('::bits'):  # bfloat16, stored as its bit pattern
            want = (want.astype(np.uint32) << 16).view(np.float32)
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got, want.astype(got.dtype) if want.dtype != got.dtype else want, err_msg=name)
    assert names == set(bundle.names())


def test_tensorflow_index_with_several_data_blocks():
    """3800 tensors whose index spans two LevelDB data blocks; each value is what TensorFlow read back."""
    bundle = TensorBundle(str(TF_WRITTEN / 'many.ckpt'))
    expected = np.load(TF_WRITTEN / 'many_values.npz')
    assert bundle.names() == list(expected['names'])
    for name, value, dtype, rank in zip(expected['names'], expected['values'], expected['dtypes'], expected['ranks']):
        got = bundle.read(str(name))
        assert got.dtype == np.dtype(str(dtype)) and got.shape == (1,) * int(rank), name
        assert float(got.reshape(-1)[0]) == value, name
    index = (TF_WRITTEN / 'many.ckpt.index').read_bytes()
    # The index block's entries point at the data blocks: more than one here.
    from faster_rcnn.convert.tensorbundle import _block_entries, _block_handle
    _, _, pos = _block_handle(index[-48:])
    off, size, _ = _block_handle(index[-48:], pos)
    assert len(list(_block_entries(index[off:off + size]))) == len(expected['index_block_keys']) == 2


def test_prefix_index_file_data_file_and_folder_all_resolve(tmp_path):
    write_bundle(str(tmp_path / 'model.ckpt'), {'w': np.ones(2, np.float32)})
    prefix = str(tmp_path / 'model.ckpt')
    for given in (prefix, prefix + '.index', prefix + '.data-00000-of-00001', str(tmp_path)):
        assert resolve_checkpoint_prefix(given) == prefix
    write_bundle(str(tmp_path / 'other.ckpt'), {'w': np.ones(2, np.float32)})
    with pytest.raises(CheckpointFormatError, match='several checkpoints'):
        resolve_checkpoint_prefix(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='nothing.ckpt.index does not exist'):
        resolve_checkpoint_prefix(str(tmp_path / 'nothing.ckpt'))


@pytest.fixture
def bundle_files(tmp_path):
    tensors = {'net/w': np.arange(1000, dtype=np.float32), 'net/b': np.arange(10, dtype=np.float32)}
    write_bundle(str(tmp_path / 'm.ckpt'), tensors)
    return tmp_path / 'm.ckpt.index', tmp_path / 'm.ckpt.data-00000-of-00001'


def test_truncated_data_file_names_file_and_tensor(bundle_files):
    index, data = bundle_files
    data.write_bytes(data.read_bytes()[:2000])
    bundle = TensorBundle(str(index))
    np.testing.assert_array_equal(bundle.read('net/b'), np.arange(10, dtype=np.float32))  # still intact
    with pytest.raises(CheckpointFormatError, match=r'm\.ckpt\.data-00000-of-00001 is truncated: tensor net/w'):
        bundle.read('net/w')


def test_damaged_tensor_fails_its_checksum(bundle_files):
    index, data = bundle_files
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointFormatError, match='tensor net/.* fails its crc32c check'):
        bundle = TensorBundle(str(index))
        for name in bundle.names():
            bundle.read(name)


def test_damaged_or_truncated_index_is_an_error(bundle_files):
    index, _ = bundle_files
    good = index.read_bytes()
    damaged = bytearray(good)
    damaged[3] ^= 0x40
    index.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointFormatError, match='fails its crc32c check'):
        TensorBundle(str(index))
    index.write_bytes(good[:-10])
    with pytest.raises(CheckpointFormatError, match='not a TensorFlow checkpoint index'):
        TensorBundle(str(index))
    index.write_bytes(good[:30] + good[-48:])  # the footer survives, the blocks do not
    with pytest.raises(CheckpointFormatError, match='truncated|crc32c|damaged'):
        TensorBundle(str(index))


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / 'x.ckpt.index').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(100))
    with pytest.raises(CheckpointFormatError, match='not a TensorFlow checkpoint index'):
        TensorBundle(str(tmp_path / 'x.ckpt'))
    (tmp_path / 'y.ckpt.index').write_bytes(b'')
    with pytest.raises(CheckpointFormatError, match='not a TensorFlow checkpoint index'):
        TensorBundle(str(tmp_path / 'y.ckpt'))


def test_missing_shard_is_named(bundle_files):
    index, data = bundle_files
    os.unlink(data)
    with pytest.raises(FileNotFoundError, match=r'data file .*m\.ckpt\.data-00000-of-00001 is missing'):
        TensorBundle(str(index))


def test_unknown_tensor_name_and_non_numeric_dtype(tmp_path):
    write_bundle(str(tmp_path / 's.ckpt'), {'w': np.ones(3, np.float32), 'names': np.zeros(2, np.uint8)},
                 dtypes={'names': 7})  # DT_STRING
    bundle = TensorBundle(str(tmp_path / 's.ckpt'))
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        bundle.read('nope')
    with pytest.raises(CheckpointFormatError, match='dtype string'):
        bundle.read('names')
