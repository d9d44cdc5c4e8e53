"""Build of the compiled twins of callscope's per-packet code (see callscope.core.compiled).

Everything else is declared in pyproject.toml. The twins are optional extensions: without
a C compiler the install goes on with the Python code only (the same results, slower), and
a test (tests/test_compiled.py) reports that they are missing.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(
                "callscope.core._frozenfast",
                ["src/callscope/core/_frozenfast.pyx"],
                optional=True,
            ),
            Extension(
                "callscope.protocol._rtpfast",
                ["src/callscope/protocol/_rtpfast.pyx"],
                optional=True,
            ),
            Extension(
                "callscope.protocol._sipfast",
                ["src/callscope/protocol/_sipfast.pyx"],
                optional=True,
            ),
            Extension(
                "callscope.capture._hepfast",
                ["src/callscope/capture/_hepfast.pyx"],
                optional=True,
            ),
            Extension(
                "callscope.capture._pcapscan",
                ["src/callscope/capture/_pcapscan.pyx"],
                optional=True,
            ),
        ],
        include_path=["src"],
        compiler_directives={"language_level": 3},
        quiet=True,
    )
)
