# Metadata lives in pyproject.toml; this file only wires in the cffi extension.
import platform

from setuptools import setup

# cffi builds the extension for CPython's limited API (it defines Py_LIMITED_API),
# so one CPython wheel serves 3.9 and later: tag it cp39-abi3. PyPy has no stable
# ABI; its wheels keep their pp39 tag.
options = {"bdist_wheel": {"py_limited_api": "cp39"}} if platform.python_implementation() == "CPython" else {}

setup(cffi_modules=["build_mongoose.py:ffibuilder"], options=options)
