"""cffi builder: compiles Mongoose and the shim into ``pymongoose._mongoose_cffi``.

Out-of-line, API mode. The declarations Python may use are in
``pymongoose/_native/cdef.h``; the C that must be C is in the units listed in C_UNITS.
Both are compiled in one translation unit with Mongoose, which is fetched and
verified by ``vendor/fetch_mongoose.py`` (or taken from ``MONGOOSE_SRC``), with the
fixes in ``vendor/mongoose_patches.py`` applied to a copy.

setuptools runs this through ``cffi_modules``; to build in place by hand::

    python build_mongoose.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
NATIVE_DIR = HERE / "pymongoose" / "_native"


PATCHED_DIR = HERE / "build" / "mongoose-patched"
MBEDTLS_PATCHED_DIR = HERE / "build" / "mbedtls-patched"


def _load_vendor_module(name: str):
    vendor = str(HERE / "vendor")
    spec = importlib.util.spec_from_file_location(name, f"{vendor}/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, vendor)  # for the modules' imports of each other (mbedtls_patches)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(vendor)
    return module


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _fetched(fetcher_name: str, *args: str) -> Path:
    """The source folder vendor/<fetcher_name>.py provides (fetched and verified if
    needed); the build stops with the fetcher's explanation if it cannot."""
    fetcher = _load_vendor_module(fetcher_name)
    try:
        return fetcher.ensure_source(*args, log=_log)
    except RuntimeError as error:  # MongooseSourceError, VendorSourceError
        sys.exit(f"error: cannot build pymongoose: {error}")


def _relative(path: Path) -> str:
    """Relative to this folder when it is under it: setuptools wants relative paths."""
    return os.path.relpath(path, HERE) if HERE in path.parents else str(path)


# The platform the extension is for: this one, or another for a cross-compile check
# (.ci/cross: PYMONGOOSE_TARGET=darwin or win32 emits the C that platform would build).
TARGET = os.environ.get("PYMONGOOSE_TARGET") or sys.platform
if TARGET.startswith("linux"):
    TARGET = "linux"
if TARGET not in ("linux", "darwin", "win32") and "PYMONGOOSE_TARGET" in os.environ:
    sys.exit(f"error: PYMONGOOSE_TARGET must be 'linux', 'darwin' or 'win32', not {TARGET!r}")


# The TLS library behind Mongoose: mbed TLS (TLS 1.2 and 1.3, RSA and ECDSA; the
# default) or "builtin", Mongoose's own (TLS 1.3 with ECDSA P-256 only, smaller).
TLS_BACKEND = os.environ.get("PYMONGOOSE_TLS", "mbedtls")
if TLS_BACKEND not in ("mbedtls", "builtin"):
    sys.exit(f"error: PYMONGOOSE_TLS must be 'mbedtls' or 'builtin', not {TLS_BACKEND!r}")


def _tls_build_options() -> dict:
    """What the TLS backend adds to the extension: defines, headers, its C files."""
    if TLS_BACKEND == "builtin":
        return {"define_macros": [("MG_TLS", "MG_TLS_BUILTIN")], "include_dirs": [], "sources": [],
                "libraries": []}
    source = _fetched("fetch_debian", "mbedtls")
    library = source / "library"
    patched = _patched_mbedtls(library)
    sources = [_relative(patched.get(path.name, path)) for path in sorted(library.glob("*.c"))]
    return {
        "define_macros": [("MG_TLS", "MG_TLS_MBED"),
                          ("MBEDTLS_USER_CONFIG_FILE", '"mbedtls_user_config.h"')],
        "include_dirs": [str(source / "include"), str(library)],
        "sources": sources,
        "libraries": [] if TARGET == "win32" else ["pthread"],  # Windows: threading_alt.h
    }


# zlib's files for raw deflate and inflate (permessage-deflate, _native/deflate.c).
ZLIB_UNITS = ("adler32.c", "crc32.c", "deflate.c", "inflate.c", "inffast.c", "inftrees.c",
              "trees.c", "zutil.c")


def _zlib_build_options() -> dict:
    source = _fetched("fetch_debian", "zlib")
    return {"include_dirs": [str(source)], "sources": [_relative(source / unit) for unit in ZLIB_UNITS]}


def _exports_map() -> Path:
    """A linker version script exporting the module's entry point alone: the one
    this interpreter looks for (lld refuses to name a symbol that does not exist)."""
    entry = ("_cffi_pypyinit__mongoose_cffi" if sys.implementation.name == "pypy"
             else "PyInit__mongoose_cffi")
    path = HERE / "build" / f"exports-{sys.implementation.name}.map"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{{\n  global: {entry};\n  local: *;\n}};\n", encoding="utf-8")
    return path


def _link_args() -> list:
    args = [f"-fsanitize={SANITIZE}"] if SANITIZE else []
    if TARGET == "linux":
        # Export the module's entry point alone. The extension carries its own zlib
        # and mbed TLS; without this their functions could be bound, at load time, to
        # another copy already in the process (Python's own zlib, most of all).
        args.append(f"-Wl,--version-script={_exports_map()}")
    return args


def _patched_mongoose(source_dir: Path) -> Path:
    """Write Mongoose with vendor/mongoose_patches.py applied; return its folder."""
    patches = _load_vendor_module("mongoose_patches")
    pristine = (source_dir / "mongoose.c").read_text(encoding="utf-8")
    pinned = "MONGOOSE_SRC" not in os.environ
    try:
        patched = patches.apply_patches(pristine, required=pinned, log=_log)
    except RuntimeError as error:
        sys.exit(f"error: cannot build pymongoose: {error}")
    PATCHED_DIR.mkdir(parents=True, exist_ok=True)
    target = PATCHED_DIR / "mongoose.c"
    if not target.exists() or target.read_text(encoding="utf-8") != patched:
        target.write_text(patched, encoding="utf-8")
    return PATCHED_DIR


def _patched_mbedtls(library: Path) -> dict:
    """Write the mbed TLS files vendor/mbedtls_patches.py changes; return
    {file name: patched copy}. They include the rest from ``library``."""
    patches = _load_vendor_module("mbedtls_patches")
    pinned = "MBEDTLS_SRC" not in os.environ
    copies = {}
    MBEDTLS_PATCHED_DIR.mkdir(parents=True, exist_ok=True)
    for name, file_patches in patches.PATCHES.items():
        pristine = (library / name).read_text(encoding="utf-8")
        try:
            text = patches.apply_patches(pristine, required=pinned, log=_log, patches=file_patches,
                                         where=f"mbed TLS's {name}")
        except RuntimeError as error:
            sys.exit(f"error: cannot build pymongoose: {error}")
        target = MBEDTLS_PATCHED_DIR / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        copies[name] = target
    return copies


# How Mongoose waits for I/O: epoll on Linux; poll() elsewhere (macOS, the BSDs,
# Windows' WSAPoll), and on Linux when asked, to test that build here:
# PYMONGOOSE_IO=poll.
IO_BACKEND = os.environ.get("PYMONGOOSE_IO") or ("epoll" if TARGET == "linux" else "poll")
if IO_BACKEND not in ("epoll", "poll"):
    sys.exit(f"error: PYMONGOOSE_IO must be 'epoll' or 'poll', not {IO_BACKEND!r}")
if IO_BACKEND == "epoll" and TARGET != "linux":
    sys.exit("error: PYMONGOOSE_IO=epoll needs Linux; leave it unset to use poll()")

# How Mongoose is configured for this package.
MONGOOSE_DEFINES = [
    ("MG_ENABLE_IPV6", "1"),
    ("MG_IO_SIZE", "16384"),  # Buffer growth step: fewer reallocations per request
    # Mongoose's one receive limit, for every protocol, is 3 MiB; the shim sets each
    # protocol's own (a WebSocket message may be larger: max_message_size) and keeps
    # this only as the ceiling, above the 1 GiB frame Mongoose's parser accepts.
    ("MG_MAX_RECV_SIZE", "(1100UL * 1024UL * 1024UL)"),
    # Connections the kernel queues for accept() (Mongoose's default, 128, drops SYNs
    # in a burst; the kernel caps it at net.core.somaxconn).
    ("MG_SOCK_LISTEN_BACKLOG_SIZE", "4096"),
    # How Mongoose waits for I/O (IO_BACKEND above); without either it would use
    # select(), limited to FD_SETSIZE sockets. Both are set: on Linux Mongoose
    # turns epoll on unless told.
    ("MG_ENABLE_EPOLL", "1" if IO_BACKEND == "epoll" else "0"),
    ("MG_ENABLE_POLL", "0" if IO_BACKEND == "epoll" else "1"),
] + ([("_CRT_RAND_S", None)] if TARGET == "win32" else [])  # Mongoose's random numbers: rand_s()

WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function"]
# A sanitizer build (see docs/reliability.md): PYMONGOOSE_SANITIZE=address,undefined
SANITIZE = os.environ.get("PYMONGOOSE_SANITIZE", "")


def _compile_args() -> list:
    if sys.platform == "win32":  # built with MSVC: C11 for _Thread_local
        return ["/std:c11"]
    args = ["-std=gnu11", "-O2", *WARNINGS]
    if SANITIZE:
        args += [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer", "-g", "-O1"]
    return args


# pymongoose's C, by concern, in the order they build on each other (see core.c).
C_UNITS = ("core.c", "tls.c", "wait.c", "deflate.c", "ws.c", "mqtt.c", "httpd.c", "dispatch.c", "connections.c",
           "http.c", "servers.c", "dns.c", "timers.c", "utils.c", "bench.c")


def _extension_options() -> dict:
    """What the extension is compiled from and how (cffi's set_source keywords)."""
    mongoose_dir = _fetched("fetch_mongoose")
    patched_dir = _patched_mongoose(mongoose_dir)
    tls = _tls_build_options()
    zlib = _zlib_build_options()
    return {
        # x25519.c is a unit of its own: mbed TLS's ecp.c calls it (through tls.c).
        "sources": tls["sources"] + zlib["sources"] + [_relative(NATIVE_DIR / "x25519.c")],
        "include_dirs": [str(patched_dir), str(mongoose_dir), str(NATIVE_DIR), *tls["include_dirs"],
                         *zlib["include_dirs"]],
        "define_macros": MONGOOSE_DEFINES + tls["define_macros"],
        "extra_compile_args": _compile_args(),
        "extra_link_args": _link_args(),
        "libraries": (["ws2_32", "bcrypt"] if TARGET == "win32" else []) + tls["libraries"],
    }


def _build(options: dict) -> FFI:
    builder = FFI()
    builder.cdef((NATIVE_DIR / "cdef.h").read_text(encoding="utf-8"))
    builder.set_source(
        "pymongoose._mongoose_cffi",
        # One translation unit: (patched) Mongoose, then the units that build on it;
        # the TLS library's and zlib's own files are compiled beside it.
        "".join(f'#include "{unit}"\n' for unit in ("mongoose.c", *C_UNITS, "held_gil.h")),
        **options,
    )
    return builder


EXTENSION_OPTIONS = _extension_options()
ffibuilder = _build(EXTENSION_OPTIONS)

if __name__ == "__main__":
    if sys.argv[1:2] == ["--emit"]:
        # For a cross-compile check (.ci/cross): the module's C and how to compile it.
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        ffibuilder.emit_c_code(str(out / "_mongoose_cffi.c"))
        (out / "options.json").write_text(json.dumps({"target": TARGET, "io": IO_BACKEND, **EXTENSION_OPTIONS},
                                                     indent=1), encoding="utf-8")
    else:
        ffibuilder.compile(tmpdir=str(HERE), verbose=True)
