"""Builds the native modules faster_rcnn.ops._native, faster_rcnn.ops._crop and faster_rcnn.convert._crc32c
(Cython, CPU only). Nothing is compiled for CUDA."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def _extension(package: str, name: str) -> Extension:
    return Extension(
        f'faster_rcnn.{package}.{name}',
        [f'lib/faster_rcnn/{package}/{name}.pyx'],
        include_dirs=[np.get_include()],
        extra_compile_args=['-O3'],
        define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')],
    )


# _native: NMS and box overlaps; _crop: the CPU crop-and-resize (+ max-pool) kernels; _crc32c: the checksum
# of TensorFlow checkpoints (convert_from_tensorflow.py).
extensions = [_extension('ops', '_native'), _extension('ops', '_crop'), _extension('convert', '_crc32c')]

setup(ext_modules=cythonize(extensions, language_level=3))
