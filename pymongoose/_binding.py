"""The one place that imports the compiled extension; every other module takes
``ffi`` and ``lib`` from here."""

from ._mongoose_cffi import ffi, lib

lib.pm_init()  # Mongoose's log off and routed to Python; its clock seeded.

__all__ = ["ffi", "lib"]
