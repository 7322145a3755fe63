"""``detections.pkl``: written by test_net (tf-faster-rcnn's format, a pickled ``all_boxes[cls][image]``), read
back by reval without running code.

A pickle can call any function while it loads; a detections file someone hands you must not. It is read with
an unpickler that resolves only what arrays and lists need (numpy's array and dtype reconstructors), so files
written by tf-faster-rcnn (Python 2, numpy 1) and by this project load as before, and anything else is an
error naming the file and the object it tried to build.
"""
from __future__ import annotations

import pickle

import numpy as np

from ..errors import DataError
from .atomic import atomic_write

# (module, name) pairs an array pickle may name: numpy 1 and 2 module paths, protocols 2 to 5.
_ALLOWED = {
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('numpy.core.numeric', '_frombuffer'), ('numpy._core.numeric', '_frombuffer'),
    ('_codecs', 'encode'),  # how protocol 2 stores an array's bytes under Python 3 (text -> bytes, no code)
    ('__builtin__', 'bytes'), ('builtins', 'bytes'),  # protocol 2's empty byte string (an empty array)
}


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, file, path: str) -> None:
        super().__init__(file, encoding='latin1')  # Python 2 pickles (tf-faster-rcnn's) hold byte strings
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise DataError(f'{self._path}: refusing to load it: it names {module}.{name}, which a detections file '
                        'never holds (only arrays in lists); it may have been made to run code')


def write_detections(all_boxes: list[list[np.ndarray]], path: str) -> None:
    """Pickle ``all_boxes`` to ``path`` atomically (a crash never leaves a half-written file there)."""
    with atomic_write(path) as f:
        pickle.dump(all_boxes, f, pickle.HIGHEST_PROTOCOL)


def read_detections(path: str) -> list[list[np.ndarray]]:
    """``all_boxes[cls][image]`` ((n, 5) float arrays) from a detections file, without running code."""
    try:
        with open(path, 'rb') as f:
            obj = _ArraysOnly(f, path).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DataError(f'{path}: not a readable detections file ({type(e).__name__}: {e}); run '
                        'tools/test_net.py again to write it') from None
    if not isinstance(obj, list) or not all(isinstance(c, list) for c in obj):
        raise DataError(f'{path}: expected all_boxes[class][image] (lists of arrays), got {type(obj).__name__}')
    for c, per_image in enumerate(obj):
        for i, dets in enumerate(per_image):
            if dets is None or (isinstance(dets, list) and not dets):
                per_image[i] = np.zeros((0, 5), np.float32)
                continue
            if not isinstance(dets, np.ndarray) or dets.ndim != 2 or dets.shape[1] < 5:
                raise DataError(f'{path}: all_boxes[{c}][{i}] is not an (n, 5) array of [x1, y1, x2, y2, score]')
    return obj
