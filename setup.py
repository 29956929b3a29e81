"""Build the compiled core: every ``mmcore_ext/*.pyx`` is cythonized with its ``.pxd`` declarations.

``pip install -e .`` builds everything (build requirements are declared in ``pyproject.toml``).

Compiler directives that change semantics (``boundscheck``, ``wraparound``, ``cdivision``) are set in each
module's ``# cython:`` header, not here, so a module compiled alone (``cythonize -i``) behaves exactly as in
the package build: they are off only in the modules whose indices are proven in range (book, quoting, risk;
see their header comments).

MEXC protobuf modules: before the extensions are built, :func:`generate_mexc_pb` compiles MEXC's vendored ``.proto``
schemas (``vendor/mexc-websocket-proto/``, Apache-2.0, unchanged) into ``mmcore/venues/mexc/pb/*_pb2.py`` with the
``protoc`` bundled in ``grpcio-tools`` (a pinned build requirement; its protobuf version fixes the runtime
``protobuf`` range in ``[project] dependencies``). The generated files are not committed (``.gitignore``); they are
rewritten whenever a schema is newer than its module, so a fresh clone gets them from ``pip install -e .``.
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

PROTO_DIR = os.path.join(HERE, "vendor", "mexc-websocket-proto")
PB_DIR = os.path.join(HERE, "mmcore", "venues", "mexc", "pb")
PROTO_FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(PROTO_DIR, "*.proto")))


def _fix_imports(text):
    """protoc writes ``import X_pb2 as X__pb2`` for an imported schema (top-level modules); the generated modules
    live in the package ``mmcore.venues.mexc.pb``, so the import is made relative. The descriptors are added to the
    package's private pool (``mmcore.venues.mexc.pb._pool.POOL``), not protobuf's default pool, so another copy of
    MEXC's schemas loaded in the same process (ccxt ships one) cannot clash with these file names."""
    import re
    text = re.sub(r"^import (\w+_pb2) as (\w+)$", r"from . import \1 as \2", text, flags=re.M)
    if "_descriptor_pool.Default().AddSerializedFile(" not in text:
        raise RuntimeError("unexpected protoc output: no _descriptor_pool.Default().AddSerializedFile(")
    text = text.replace("_descriptor_pool.Default().AddSerializedFile(", "_POOL.AddSerializedFile(")
    head = "from google.protobuf import descriptor_pool as _descriptor_pool\n"
    if head not in text:
        raise RuntimeError("unexpected protoc output: no descriptor_pool import")
    text = text.replace(head, head + "from ._pool import POOL as _POOL\n", 1)
    return "# Generated at build time by setup.py (generate_mexc_pb) from vendor/mexc-websocket-proto; do not edit.\n" + text


def generate_mexc_pb():
    """Generate ``mmcore/venues/mexc/pb/<Name>_pb2.py`` for every vendored ``.proto`` whose module is missing or
    older than the schema (or than this file). Raises RuntimeError if protoc is needed but ``grpcio-tools`` is not
    installed or protoc fails."""
    if not PROTO_FILES:                     # a copy without vendor/ (e.g. an sdist without it): keep what exists
        if glob.glob(os.path.join(PB_DIR, "*_pb2.py")):
            return
        raise RuntimeError(f"no MEXC .proto schemas in {PROTO_DIR} and no generated modules in {PB_DIR}")
    outs = [os.path.join(PB_DIR, os.path.splitext(f)[0] + "_pb2.py") for f in PROTO_FILES]
    newest = max([os.path.getmtime(os.path.join(PROTO_DIR, f)) for f in PROTO_FILES]
                 + [os.path.getmtime(os.path.abspath(__file__))])
    if all(os.path.exists(o) and os.path.getmtime(o) >= newest for o in outs):
        return
    try:
        from grpc_tools import protoc
    except ImportError:
        raise RuntimeError("generating the MEXC protobuf modules needs grpcio-tools (a build requirement in "
                           "pyproject.toml; for `python setup.py build_ext --inplace` in a venv: pip install "
                           "'.[dev]')") from None
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={tmp}"]
                         + [os.path.join(PROTO_DIR, f) for f in PROTO_FILES])
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc}) on {PROTO_DIR}")
        for f, out in zip(PROTO_FILES, outs):
            with open(os.path.join(tmp, os.path.splitext(f)[0] + "_pb2.py"), encoding="utf-8") as fh:
                text = _fix_imports(fh.read())
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(text)


generate_mexc_pb()

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"embedsignature": True},
    ),
)
