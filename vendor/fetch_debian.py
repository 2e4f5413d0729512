"""Obtain the pinned C libraries compiled into the extension from Debian's sources.

Neither is ever committed to this repository:

- **mbed TLS** 3.6 (the TLS library; Debian's source package ``mbedtls``, trixie);
- **zlib** 1.3.1 (permessage-deflate for WebSocket; Debian's ``zlib``, trixie).

For each, this module downloads the upstream tarball Debian publishes with Debian's
own client (``apt-get source --download-only``, using the Debian mirror this machine
is already configured with, in a scratch apt state that leaves the system's
untouched), checks it against the sha256 pinned below, and keeps the files the build
needs in ``vendor/<name>/``. A digest over every kept file is pinned as well, so a
copy shipped in an sdist is verified too.

Licences: mbed TLS is "Apache-2.0 OR GPL-2.0-or-later"; pymongoose takes it under
GPL-2.0-or-later, which combines with Mongoose's GPLv2. zlib's licence is permissive
(the zlib licence). See the README.

``MBEDTLS_SRC=/path`` or ``ZLIB_SRC=/path`` builds against another copy.
``PYMONGOOSE_OFFLINE=1`` forbids the download. ``PYMONGOOSE_TLS=builtin`` needs no
mbed TLS (Mongoose's own TLS 1.3).

Run it directly to fetch ahead of time::

    python vendor/fetch_debian.py            # both
    python vendor/fetch_debian.py zlib       # one
    python vendor/fetch_debian.py cpython    # headers for .ci/cross (not built in)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional

VENDOR = Path(__file__).resolve().parent
DEBIAN_SUITE = "trixie"


class DebianSource(NamedTuple):
    """One library as Debian publishes it, and what the build keeps of it."""

    name: str              # also the folder under vendor/
    version: str           # the upstream release
    debian_source: str     # apt-get source argument: package=version
    tarball: str           # the upstream tarball within that source package
    tarball_sha256: str
    tree_sha256: str       # over "path\0sha256\n" of every kept file, sorted (_tree_digest)
    prefix: str            # the folder the tarball unpacks to
    keep: Callable[[str], bool]    # which paths (relative to prefix) the build needs
    version_header: str    # the header that states the version...
    version_macro: str     # ...in this #define
    override: str          # the environment variable naming another copy
    hint: str              # what to do where apt-get is not available


def _keep_mbedtls(path: str) -> bool:
    return (path.startswith(("include/", "library/")) and path.endswith((".c", ".h"))) or path == "LICENSE"


def _keep_zlib(path: str) -> bool:
    return "/" not in path and (path.endswith((".c", ".h")) or path == "LICENSE")


def _keep_cpython(path: str) -> bool:
    return ((path.startswith("Include/") and path.endswith(".h"))
            or path in ("PC/pyconfig.h.in", "Misc/stable_abi.toml", "LICENSE"))


SOURCES: Dict[str, DebianSource] = {
    "mbedtls": DebianSource(
        name="mbedtls", version="3.6.6", debian_source="mbedtls=3.6.6-0.1~deb13u1",
        tarball="mbedtls_3.6.6.orig.tar.bz2",
        tarball_sha256="8fb65fae8dcae5840f793c0a334860a411f884cc537ea290ce1c52bb64ca007a",
        tree_sha256="190cbb300b1ca85b13128d0bc7e58807d9cfde20a34770ec64b4d2ecbcf59199",
        prefix="mbedtls-3.6.6/", keep=_keep_mbedtls,
        version_header="include/mbedtls/build_info.h", version_macro="MBEDTLS_VERSION_STRING",
        override="MBEDTLS_SRC",
        hint=("set MBEDTLS_SRC to an mbed TLS 3.6 source tree, or build with PYMONGOOSE_TLS=builtin "
              "(Mongoose's own TLS 1.3, ECDSA P-256 only)"),
    ),
    "zlib": DebianSource(
        name="zlib", version="1.3.1", debian_source="zlib=1:1.3.dfsg+really1.3.1-1",
        tarball="zlib_1.3.dfsg+really1.3.1.orig.tar.gz",
        tarball_sha256="60dd315c07f616887caa029408308a018ace66e3d142726a97db164b3b8f69fb",
        tree_sha256="e99168a5156e6f17598da3d75786969913cef85b5f47b2fcfe79d9302e9ae4a5",
        prefix="zlib-1.3.1/", keep=_keep_zlib,
        version_header="zlib.h", version_macro="ZLIB_VERSION",
        override="ZLIB_SRC",
        hint="set ZLIB_SRC to a zlib 1.3 source tree (the folder holding zlib.h and deflate.c)",
    ),
    # Not part of the extension: CPython's headers with Windows' pyconfig.h and the
    # stable ABI's list of exports, for the Windows cross-compile check (.ci/cross).
    "cpython": DebianSource(
        name="cpython", version="3.13.5", debian_source="python3.13=3.13.5-2+deb13u5",
        tarball="python3.13_3.13.5.orig.tar.xz",
        tarball_sha256="93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640",
        tree_sha256="c9db56529d726012ad1a6d667a8c155c9daadf1c196c8fe4b9744d3796499ae2",
        prefix="Python-3.13.5/", keep=_keep_cpython,
        version_header="Include/patchlevel.h", version_macro="PY_VERSION",
        override="CPYTHON_SRC",
        hint="set CPYTHON_SRC to a CPython 3.13 source tree",
    ),
}


class VendorSourceError(RuntimeError):
    """A library's source could not be obtained or failed verification."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _kept_files(spec: DebianSource, directory: Path) -> Iterator[Path]:
    """The files the build uses, in a fixed order (object files an in-place build
    leaves beside them are not among them)."""
    paths = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}
    yield from (paths[name] for name in sorted(paths) if spec.keep(name))


def _tree_digest(spec: DebianSource, directory: Path) -> str:
    digest = hashlib.sha256()
    for path in _kept_files(spec, directory):
        digest.update(f"{path.relative_to(directory).as_posix()}\0{_sha256(path)}\n".encode())
    return digest.hexdigest()


def source_version(spec: DebianSource, directory: Path) -> str:
    """The release a tree says it is (its ``version_macro``)."""
    header = directory / spec.version_header
    if not header.is_file():
        raise VendorSourceError(f"{directory} holds no {spec.version_header}")
    match = re.search(rf'^#define {spec.version_macro}\s+"([^"]+)"', header.read_text(errors="replace"),
                      re.MULTILINE)
    if match is None:
        raise VendorSourceError(f"{header} does not define {spec.version_macro}")
    return match.group(1)


def _copy_is_intact(spec: DebianSource, directory: Path) -> bool:
    try:
        return (directory / "LICENSE").is_file() and _tree_digest(spec, directory) == spec.tree_sha256
    except OSError:
        return False


def _debian_mirror() -> Optional[str]:
    """The Debian archive URI this machine's apt is configured with, if any."""
    candidates: List[str] = []
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                candidates += line.split()[1:]
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text(errors="replace").splitlines():
            fields = line.split()
            if fields[:1] == ["deb"]:  # deb [options] URI suite components
                candidates += [field for field in fields[1:] if "://" in field][:1]
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    return None


def _download_tarball(spec: DebianSource, into: Path) -> Path:
    mirror = _debian_mirror()
    if mirror is None or shutil.which("apt-get") is None:
        raise VendorSourceError(
            f"fetching {spec.name} {spec.version} needs Debian's apt-get and a Debian mirror in "
            f"/etc/apt; elsewhere {spec.hint}."
        )
    (into / "lists" / "partial").mkdir(parents=True)
    (into / "cache").mkdir()
    sources = into / "sources.list"
    sources.write_text(f"deb-src {mirror} {DEBIAN_SUITE} main\n")
    settings = [f"Dir::Etc::SourceList={sources}", "Dir::Etc::SourceParts=/dev/null",
                f"Dir::State::Lists={into / 'lists'}", f"Dir::Cache={into / 'cache'}", "Debug::NoLocking=1"]
    if os.geteuid() == 0:
        settings.append("APT::Sandbox::User=root")  # apt's _apt user cannot read a private scratch dir
    options = ["-q", *(item for setting in settings for item in ("-o", setting))]
    for step in (["update"], ["source", "--download-only", spec.debian_source]):
        result = subprocess.run(["apt-get", *options, *step], cwd=into, capture_output=True, text=True)
        if result.returncode != 0:
            raise VendorSourceError(
                f"`apt-get {' '.join(step)}` failed (exit {result.returncode}) while fetching "
                f"{spec.name} {spec.version}:\n{result.stderr.strip()}\nElsewhere {spec.hint}."
            )
    tarball = into / spec.tarball
    if not tarball.is_file():
        raise VendorSourceError(f"apt-get fetched no {spec.tarball}")
    return tarball


def _extract(spec: DebianSource, tarball: Path, destination: Path) -> None:
    actual = _sha256(tarball)
    if actual != spec.tarball_sha256:
        raise VendorSourceError(
            f"{tarball.name} has sha256 {actual}, expected {spec.tarball_sha256}: the download was "
            "altered or is not the pinned release. Nothing was unpacked."
        )
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(tarball, "r:*") as archive:
        for member in archive.getmembers():
            name = member.name[len(spec.prefix):] if member.name.startswith(spec.prefix) else ""
            if not member.isfile() or not spec.keep(name) or ".." in name.split("/"):
                continue
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    version = source_version(spec, staging)
    if version != spec.version:
        raise VendorSourceError(f"expected {spec.name} {spec.version}, found {version}")
    if _tree_digest(spec, staging) != spec.tree_sha256:
        raise VendorSourceError(f"the unpacked {spec.name} files fail their pinned digest")
    # Swap in the verified copy whole, so a half-written directory is never reused.
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)


def ensure_source(name: str, log: Callable[[str], None] = print) -> Path:
    """Return the folder holding library ``name``'s source (``SOURCES``), fetching
    and verifying it if needed.

    >>> source = ensure_source("zlib", log=lambda message: None)  # doctest: +SKIP
    >>> (source / "deflate.c").is_file()  # doctest: +SKIP
    True
    """
    spec = SOURCES[name]
    override = os.environ.get(spec.override)
    if override:
        directory = Path(override).expanduser().resolve()
        version = source_version(spec, directory)
        note = "" if version == spec.version else f" (this package is tested with {spec.version})"
        log(f"pymongoose: building against {name} {version} from {directory}{note}")
        return directory
    destination = VENDOR / name
    if _copy_is_intact(spec, destination):
        return destination
    if os.environ.get("PYMONGOOSE_OFFLINE", "") not in ("", "0"):
        raise VendorSourceError(
            f"PYMONGOOSE_OFFLINE is set and {destination} holds no verified {name} {spec.version}; "
            "build from the project's sdist, which includes it, run "
            f"`python vendor/fetch_debian.py {name}` while online, or set {spec.override}."
        )
    log(f"pymongoose: fetching {name} {spec.version} (Debian source package) with apt-get")
    with tempfile.TemporaryDirectory(prefix=f"pymongoose-{name}-") as scratch:
        tarball = _download_tarball(spec, Path(scratch))
        _extract(spec, tarball, destination)
    log(f"pymongoose: {name} {spec.version} verified and kept in {destination}")
    return destination


if __name__ == "__main__":
    try:
        for wanted in sys.argv[1:] or ["mbedtls", "zlib"]:  # what the extension needs
            print(ensure_source(wanted))
    except (VendorSourceError, KeyError) as error:
        sys.exit(f"error: {error}")
