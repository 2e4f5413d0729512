"""Compile and link the extension for macOS and Windows with zig, on Linux.

    python3 .ci/cross.py                   # aarch64-macos, x86_64-macos, x86_64-windows-gnu
    python3 .ci/cross.py x86_64-windows-gnu

A check that the C builds off Linux, not a release: those wheels come from
cibuildwheel on real machines (.github/workflows/wheels.yml). For each target,
build_mongoose.py emits the module's C and its compile options as that platform
would build them (PYMONGOOSE_TARGET: poll() instead of epoll, no GNU linker version
script, Winsock), and zig compiles Mongoose, mbed TLS, zlib and our units, then links:

- macOS: a shared library with ``-undefined dynamic_lookup`` (Python's symbols are
  the interpreter's; a dylib, not a bundle: zig 0.15 crashes linking ``-bundle``,
  and Python's dlopen loads either), against this machine's Python headers (the
  limited API is the same there; pyconfig.h is Linux's, so this checks our C and the
  libraries', not a macOS pyconfig.h);
- Windows: a ``.pyd`` against the stable ABI's ``python3.dll``, with CPython's own
  Windows pyconfig.h and an import library made from CPython's list of stable-ABI
  exports (both from Debian's python3.13 source package: vendor/fetch_debian.py).

Each result must be the right kind of binary and export the module's entry point.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "build" / "cross"
TARGETS: Dict[str, str] = {  # zig target -> PYMONGOOSE_TARGET
    "aarch64-macos": "darwin",
    "x86_64-macos": "darwin",
    "x86_64-windows-gnu": "win32",
}


def zig() -> List[str]:
    """zig's command, from the ziglang package in the wheel tools' virtualenv."""
    tools = REPO / "build" / "wheels" / "tools"
    python = tools / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "ziglang>=0.11,<0.16"], check=True)
    return [str(python), "-m", "ziglang"]


def emit(platform: str, out: Path) -> dict:
    env = dict(os.environ, PYMONGOOSE_TARGET=platform)
    subprocess.run([sys.executable, str(REPO / "build_mongoose.py"), "--emit", str(out)], check=True, env=env,
                   cwd=REPO, stdout=subprocess.DEVNULL)
    return dict(json.loads((out / "options.json").read_text()))


def windows_python(out: Path, zig_cmd: List[str]) -> Path:
    """CPython's headers with Windows' pyconfig.h, and libpython3.a for python3.dll."""
    fetch = subprocess.run([sys.executable, str(REPO / "vendor" / "fetch_debian.py"), "cpython"], check=True,
                           capture_output=True, text=True)
    cpython = Path(fetch.stdout.strip().splitlines()[-1])
    include = out / "python-include"
    shutil.rmtree(include, ignore_errors=True)
    shutil.copytree(cpython / "Include", include)
    shutil.copy(cpython / "PC" / "pyconfig.h.in", include / "pyconfig.h")
    # The stable ABI: [function.NAME] and [data.NAME] tables in Misc/stable_abi.toml.
    toml = (cpython / "Misc" / "stable_abi.toml").read_text()
    names = re.findall(r"^\[(function|data)\.(\w+)\]", toml, re.MULTILINE)
    lines = ["LIBRARY python3.dll", "EXPORTS"] + [f"{name}{' DATA' if kind == 'data' else ''}"
                                                  for kind, name in names]
    (out / "python3.def").write_text("\n".join(lines) + "\n")
    subprocess.run([*zig_cmd, "dlltool", "-m", "i386:x86-64", "-d", str(out / "python3.def"),
                    "-l", str(out / "libpython3.a")], check=True)
    return include


def build(target: str, zig_cmd: List[str]) -> Path:
    platform = TARGETS[target]
    out = WORK / target
    shutil.rmtree(out, ignore_errors=True)
    options = emit(platform, out)
    assert options["io"] == "poll", options
    python_include = (windows_python(out, zig_cmd) if platform == "win32"
                      else Path(sysconfig.get_paths()["include"]))
    flags = [f"-D{name}={value}" if value is not None else f"-D{name}" for name, value in options["define_macros"]]
    flags += [f"-I{path}" for path in options["include_dirs"]] + [f"-I{python_include}"]
    flags += options["extra_compile_args"]
    sources = [out / "_mongoose_cffi.c"] + [REPO / source for source in options["sources"]]
    objects = [out / "obj" / f"{index}.o" for index in range(len(sources))]
    (out / "obj").mkdir()

    def compile_one(pair: "tuple[Path, Path]") -> str:
        source, obj = pair
        result = subprocess.run([*zig_cmd, "cc", "-target", target, "-c", str(source), "-o", str(obj), *flags],
                                capture_output=True, text=True, cwd=REPO)
        return f"{source.name}:\n{result.stderr}" if result.returncode != 0 else ""

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        failures = [failure for failure in pool.map(compile_one, zip(sources, objects)) if failure]
    if failures:
        raise RuntimeError(f"{target}: {len(failures)} files do not compile:\n" + "\n".join(failures))

    if platform == "darwin":
        binary = out / "_mongoose_cffi.abi3.so"
        link = ["-shared", "-undefined", "dynamic_lookup"]
    else:
        binary = out / "_mongoose_cffi.pyd"
        link = ["-shared", str(out / "libpython3.a"), *(f"-l{lib}" for lib in options["libraries"])]
    result = subprocess.run([*zig_cmd, "cc", "-target", target, "-o", str(binary), *map(str, objects), *link],
                            capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"{target}: the link fails (exit {result.returncode}):\n{result.stderr}")
    check(binary, platform)
    return binary


def check(binary: Path, platform: str) -> None:
    data = binary.read_bytes()
    magic_ok = data[:4] in (b"\xcf\xfa\xed\xfe",) if platform == "darwin" else data[:2] == b"MZ"
    if not magic_ok:
        raise RuntimeError(f"{binary} is not a {'Mach-O' if platform == 'darwin' else 'PE'} binary")
    if b"PyInit__mongoose_cffi" not in data:
        raise RuntimeError(f"{binary} does not export PyInit__mongoose_cffi")


def main(targets: List[str]) -> int:
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(f"unknown targets {unknown}; known: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    zig_cmd = zig()
    for target in targets or list(TARGETS):
        binary = build(target, zig_cmd)
        print(f"{target}: {binary.relative_to(REPO)} ({binary.stat().st_size // 1024} KiB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
