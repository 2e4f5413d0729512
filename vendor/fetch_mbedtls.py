"""Obtain the pinned mbed TLS source, the TLS library compiled into the extension.

mbed TLS is never committed to this repository. Debian publishes the 3.6 LTS release
as the source package ``mbedtls`` (trixie); this module downloads its upstream
tarball with Debian's own client (``apt-get source --download-only``, using the
Debian mirror this machine is already configured with, in a scratch apt state that
leaves the system's untouched), checks it against the sha256 pinned below, and keeps
``include/``, ``library/`` and ``LICENSE`` in ``vendor/mbedtls/``. A digest over
every kept file is pinned as well, so a copy shipped in an sdist is verified too.

Licence: mbed TLS is "Apache-2.0 OR GPL-2.0-or-later". pymongoose takes it under
GPL-2.0-or-later, which combines with Mongoose's GPLv2 (see the README).

``MBEDTLS_SRC=/path/to/mbedtls`` builds against another copy (a directory holding
``include/mbedtls/`` and ``library/``). ``PYMONGOOSE_OFFLINE=1`` forbids the
download. ``PYMONGOOSE_TLS=builtin`` needs none of this (Mongoose's own TLS 1.3).

Run it directly to fetch ahead of time::

    python vendor/fetch_mbedtls.py
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
from typing import Callable, Iterator, List, Optional

MBEDTLS_VERSION = "3.6.6"
DEBIAN_SOURCE = "mbedtls=3.6.6-0.1~deb13u1"  # the Debian source package and version
DEBIAN_SUITE = "trixie"
TARBALL = "mbedtls_3.6.6.orig.tar.bz2"
TARBALL_SHA256 = "8fb65fae8dcae5840f793c0a334860a411f884cc537ea290ce1c52bb64ca007a"
# sha256 over "path\0sha256\n" of every kept file, in sorted order (see _tree_digest).
TREE_SHA256 = "924c66c1d7256b9a06336c21914a70f0fc91a1c227e503b92f1e55b99c1858ff"

VENDOR_DIR = Path(__file__).resolve().parent / "mbedtls"
KEPT = ("include/", "library/", "LICENSE")


class MbedtlsSourceError(RuntimeError):
    """The mbed TLS source could not be obtained or failed verification."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _kept_files(directory: Path) -> Iterator[Path]:
    for root in ("include", "library"):
        yield from sorted(p for p in (directory / root).rglob("*") if p.is_file())
    yield directory / "LICENSE"


def _tree_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in _kept_files(directory):
        digest.update(f"{path.relative_to(directory).as_posix()}\0{_sha256(path)}\n".encode())
    return digest.hexdigest()


def mbedtls_version(directory: Path) -> str:
    """``MBEDTLS_VERSION_STRING`` as written in the tree's ``build_info.h``."""
    header = directory / "include" / "mbedtls" / "build_info.h"
    if not header.is_file():
        raise MbedtlsSourceError(f"{directory} holds no include/mbedtls/build_info.h")
    match = re.search(r'^#define MBEDTLS_VERSION_STRING\s+"([^"]+)"', header.read_text(errors="replace"),
                      re.MULTILINE)
    if match is None:
        raise MbedtlsSourceError(f"{header} does not define MBEDTLS_VERSION_STRING")
    return match.group(1)


def _copy_is_intact(directory: Path) -> bool:
    try:
        return (directory / "LICENSE").is_file() and _tree_digest(directory) == TREE_SHA256
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


def _download_tarball(into: Path) -> Path:
    mirror = _debian_mirror()
    if mirror is None or shutil.which("apt-get") is None:
        raise MbedtlsSourceError(
            f"fetching mbed TLS {MBEDTLS_VERSION} needs Debian's apt-get and a Debian mirror in "
            "/etc/apt; elsewhere set MBEDTLS_SRC to an mbed TLS 3.6 source tree, or build with "
            "PYMONGOOSE_TLS=builtin (Mongoose's own TLS 1.3, ECDSA P-256 only)."
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
    for step in (["update"], ["source", "--download-only", DEBIAN_SOURCE]):
        result = subprocess.run(["apt-get", *options, *step], cwd=into, capture_output=True, text=True)
        if result.returncode != 0:
            raise MbedtlsSourceError(
                f"`apt-get {' '.join(step)}` failed (exit {result.returncode}) while fetching mbed TLS "
                f"{MBEDTLS_VERSION}:\n{result.stderr.strip()}\nSet MBEDTLS_SRC, or build with "
                "PYMONGOOSE_TLS=builtin."
            )
    tarball = into / TARBALL
    if not tarball.is_file():
        raise MbedtlsSourceError(f"apt-get fetched no {TARBALL}")
    return tarball


def _extract(tarball: Path, destination: Path) -> None:
    actual = _sha256(tarball)
    if actual != TARBALL_SHA256:
        raise MbedtlsSourceError(
            f"{tarball.name} has sha256 {actual}, expected {TARBALL_SHA256}: the download was "
            "altered or is not the pinned release. Nothing was unpacked."
        )
    prefix = f"mbedtls-{MBEDTLS_VERSION}/"
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(tarball, "r:bz2") as archive:
        for member in archive.getmembers():
            name = member.name[len(prefix):] if member.name.startswith(prefix) else ""
            if not member.isfile() or not name.startswith(KEPT) or ".." in name.split("/"):
                continue
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    version = mbedtls_version(staging)
    if version != MBEDTLS_VERSION:
        raise MbedtlsSourceError(f"expected mbed TLS {MBEDTLS_VERSION}, found {version}")
    if _tree_digest(staging) != TREE_SHA256:
        raise MbedtlsSourceError("the unpacked mbed TLS files fail their pinned digest")
    # Swap in the verified copy whole, so a half-written directory is never reused.
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)


def ensure_source(log: Callable[[str], None] = print) -> Path:
    """Return a directory holding mbed TLS's ``include/`` and ``library/``, fetching
    if needed.

    >>> source = ensure_source(log=lambda message: None)  # doctest: +SKIP
    >>> (source / "library" / "ssl_tls.c").is_file()  # doctest: +SKIP
    True
    """
    override = os.environ.get("MBEDTLS_SRC")
    if override:
        directory = Path(override).expanduser().resolve()
        version = mbedtls_version(directory)
        if not (directory / "library").is_dir():
            raise MbedtlsSourceError(f"MBEDTLS_SRC={override}: no library/ there")
        note = "" if version == MBEDTLS_VERSION else f" (this package is tested with {MBEDTLS_VERSION})"
        log(f"pymongoose: building against mbed TLS {version} from {directory}{note}")
        return directory
    if _copy_is_intact(VENDOR_DIR):
        return VENDOR_DIR
    if os.environ.get("PYMONGOOSE_OFFLINE", "") not in ("", "0"):
        raise MbedtlsSourceError(
            f"PYMONGOOSE_OFFLINE is set and {VENDOR_DIR} holds no verified mbed TLS "
            f"{MBEDTLS_VERSION}; build from the project's sdist, which includes it, run "
            "`python vendor/fetch_mbedtls.py` while online, or set MBEDTLS_SRC."
        )
    log(f"pymongoose: fetching mbed TLS {MBEDTLS_VERSION} (Debian source package) with apt-get")
    with tempfile.TemporaryDirectory(prefix="pymongoose-mbedtls-") as scratch:
        tarball = _download_tarball(Path(scratch))
        _extract(tarball, VENDOR_DIR)
    log(f"pymongoose: mbed TLS {MBEDTLS_VERSION} verified and kept in {VENDOR_DIR}")
    return VENDOR_DIR


if __name__ == "__main__":
    try:
        print(ensure_source())
    except MbedtlsSourceError as error:
        sys.exit(f"error: {error}")
