"""Builds the native modules faster_rcnn.ops._native and faster_rcnn.ops._crop (Cython, CPU only). Nothing is compiled for CUDA."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def _extension(name: str) -> Extension:
    return Extension(
        f'faster_rcnn.ops.{name}',
        [f'lib/faster_rcnn/ops/{name}.pyx'],
        include_dirs=[np.get_include()],
        extra_compile_args=['-O3'],
        define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')],
    )


# _native: NMS and box overlaps; _crop: the CPU crop-and-resize (+ max-pool) kernels.
extensions = [_extension('_native'), _extension('_crop')]

setup(ext_modules=cythonize(extensions, language_level=3))
