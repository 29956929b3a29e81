"""Build the compiled core: every ``mmcore_ext/*.pyx`` is cythonized with its ``.pxd`` declarations.

``pip install -e .`` builds everything (build requirements are declared in ``pyproject.toml``).
Bounds checks and negative-index wraparound are off module-wide: every index in ``mmcore_ext`` is
computed from a length checked in the same function (see each module's comments).
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
sources = sorted(glob.glob(os.path.join("mmcore_ext", "*.pyx")))
extensions = [
    Extension(
        "mmcore_ext." + os.path.splitext(os.path.basename(path))[0],
        [path],
        include_dirs=[numpy.get_include()],
        extra_compile_args=["-O2"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for path in sources
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "embedsignature": True,
        },
    ),
)
