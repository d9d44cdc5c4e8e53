"""Build of the compiled twins of callscope's per-packet code (see callscope.core.compiled).

Everything else is declared in pyproject.toml. Without a C compiler the build fails; set
``CALLSCOPE_NO_COMPILE=1`` to install the Python code only (it runs the same, slower).
"""

import os

from setuptools import Extension, setup

if os.environ.get("CALLSCOPE_NO_COMPILE", "") not in ("", "0"):
    ext_modules = []
else:
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [
            Extension("callscope.protocol._rtpfast", ["src/callscope/protocol/_rtpfast.pyx"]),
            Extension("callscope.capture._pcapscan", ["src/callscope/capture/_pcapscan.pyx"]),
        ],
        include_path=["src"],
        compiler_directives={"language_level": 3},
        quiet=True,
    )

setup(ext_modules=ext_modules)
