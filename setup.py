# Metadata lives in pyproject.toml; this file only wires in the cffi extension.
from setuptools import setup

setup(cffi_modules=["build_mongoose.py:ffibuilder"])
