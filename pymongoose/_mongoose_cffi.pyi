# The compiled extension built by build_mongoose.py (cffi, out-of-line API mode).
# cffi objects are dynamic: every C function and constant is reached through them,
# as declared in _native/cdef.h. Typed code converts what it reads at the boundary.
from typing import Any

ffi: Any
lib: Any
