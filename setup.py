"""Build the compiled core: every ``mmcore_ext/*.pyx`` is cythonized with its ``.pxd`` declarations.

``pip install -e .`` builds everything (build requirements are declared in ``pyproject.toml``).
Compiler directives that change semantics (``boundscheck``, ``wraparound``, ``cdivision``) are set in each
module's ``# cython:`` header, not here, so a module compiled alone (``cythonize -i``) behaves exactly as in
the package build: they are off only in the modules whose indices are proven in range (book, quoting, risk;
see their header comments).
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
sources = sorted(glob.glob(os.path.join("mmcore_ext", "*.pyx")))
extensions = [
    Extension(
        "mmcore_ext." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=["-O2"],
    )
    for path in sources
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"embedsignature": True},
    ),
)
