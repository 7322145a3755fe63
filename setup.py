"""Builds the one native module, faster_rcnn.ops._native (Cython, CPU only). Nothing is compiled for CUDA."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        'faster_rcnn.ops._native',
        ['lib/faster_rcnn/ops/_native.pyx'],
        include_dirs=[np.get_include()],
        extra_compile_args=['-O3'],
        define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')],
    )
]

setup(ext_modules=cythonize(extensions, language_level=3))
