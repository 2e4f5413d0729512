"""Obtain the pinned Mongoose source for the build.

Mongoose is never committed to this repository.  The package index holds one copy
of the 7.23 release: inside the ``cymongoose==0.2.5`` source distribution, under
``thirdparty/mongoose/``.  This module downloads that sdist with pip (no wheel, no
dependencies), checks every file against the sha256 values pinned below, and keeps
the result in ``vendor/mongoose/`` so later builds need no network.

``MONGOOSE_SRC=/path/to/dir`` builds against another copy instead (a newer release,
a licensee's tree); its ``MG_VERSION`` is reported but not pinned.
``PYMONGOOSE_OFFLINE=1`` forbids the download: the build then uses the verified copy
already in ``vendor/mongoose/`` (as in this project's sdist) or stops.

Run it directly to fetch ahead of time::

    python vendor/fetch_mongoose.py
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

MONGOOSE_VERSION = "7.23"
SDIST_REQUIREMENT = "cymongoose==0.2.5"
SDIST_NAME = "cymongoose-0.2.5.tar.gz"
SDIST_SHA256 = "8c0ec19752d493702c566735a28918f1b81a756197f78e4931c566dbad849a8f"

# file kept in vendor/mongoose/ -> (path inside the sdist, sha256)
PINNED_FILES = {
    "mongoose.c": (
        "thirdparty/mongoose/mongoose.c",
        "651d514ee52761c26af774d74e91346bf150c915120d967ec4332a69ea1600f5",
    ),
    "mongoose.h": (
        "thirdparty/mongoose/mongoose.h",
        "0ee23157099964b7ca1c7bf3e02b1b8250cbd7838a6938fed63726e720f70b0b",
    ),
    # The GNU GPL v2 text, from the sdist's top level.
    "LICENSE": (
        "LICENSE",
        "edaef632cbb643e4e7a221717a6c441a4c1a7c918e6e4d56debc3d8739b233f6",
    ),
    # Cesanta's copyright and dual-licensing notice for Mongoose.
    "NOTICE": (
        "thirdparty/mongoose/LICENSE",
        "9abc2509d90c01ff2a0c91abf73582cdbcf1d2dbcc0b7973097eced43cf4cdd4",
    ),
}

VENDOR_DIR = Path(__file__).resolve().parent / "mongoose"


class MongooseSourceError(RuntimeError):
    """The Mongoose source could not be obtained or failed verification."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def mg_version(source_dir: Path) -> str:
    """Return ``MG_VERSION`` as written in ``source_dir/mongoose.h``."""
    header = (source_dir / "mongoose.h").read_text(encoding="utf-8", errors="replace")
    match = re.search(r'^#define MG_VERSION "([^"]+)"', header, re.MULTILINE)
    if match is None:
        raise MongooseSourceError(f"{source_dir / 'mongoose.h'} does not define MG_VERSION")
    return match.group(1)


def _pinned_copy_is_intact(directory: Path) -> bool:
    return all(
        (directory / name).is_file() and _sha256(directory / name) == digest
        for name, (_, digest) in PINNED_FILES.items()
    )


def _download_sdist(into: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "cymongoose",
        # The sdist declares Requires-Python >= 3.10; we only take two C files from
        # it, so PyPy 3.9 may fetch it too.
        "--ignore-requires-python", "--disable-pip-version-check", "--quiet",
        "--dest", str(into), SDIST_REQUIREMENT,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise MongooseSourceError(f"could not run pip to fetch Mongoose: {exc}") from exc
    sdist = into / SDIST_NAME
    if result.returncode != 0 or not sdist.is_file():
        raise MongooseSourceError(
            f"`pip download {SDIST_REQUIREMENT}` failed (exit {result.returncode}); "
            "the build needs the package index once to fetch Mongoose "
            f"{MONGOOSE_VERSION}.\n{result.stderr.strip()}\n"
            "Fix the network or proxy settings, or set MONGOOSE_SRC to a directory "
            "holding mongoose.c and mongoose.h."
        )
    return sdist


def _extract_pinned(sdist: Path, destination: Path) -> None:
    actual = _sha256(sdist)
    if actual != SDIST_SHA256:
        raise MongooseSourceError(
            f"{sdist.name} has sha256 {actual}, expected {SDIST_SHA256}: the download "
            "was altered or is not the pinned release. Nothing was unpacked."
        )
    prefix = SDIST_NAME[: -len(".tar.gz")]
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(sdist, "r:gz") as archive:
        for name, (member_path, digest) in PINNED_FILES.items():
            member = archive.extractfile(f"{prefix}/{member_path}")
            if member is None:
                raise MongooseSourceError(f"{sdist.name} has no {member_path}")
            target = staging / name
            target.write_bytes(member.read())
            if _sha256(target) != digest:
                raise MongooseSourceError(f"{member_path} in {sdist.name} fails its sha256 check")
    version = mg_version(staging)
    if version != MONGOOSE_VERSION:
        raise MongooseSourceError(f"expected Mongoose {MONGOOSE_VERSION}, found {version}")
    # Swap in the verified copy whole, so a half-written directory is never reused.
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)


def ensure_source(log=print) -> Path:
    """Return a directory holding ``mongoose.c`` and ``mongoose.h``, fetching if needed.

    >>> source = ensure_source(log=lambda message: None)  # doctest: +SKIP
    >>> (source / "mongoose.c").is_file()  # doctest: +SKIP
    True
    """
    override = os.environ.get("MONGOOSE_SRC")
    if override:
        directory = Path(override).expanduser().resolve()
        for name in ("mongoose.c", "mongoose.h"):
            if not (directory / name).is_file():
                raise MongooseSourceError(f"MONGOOSE_SRC={override}: no {name} there")
        version = mg_version(directory)
        note = "" if version == MONGOOSE_VERSION else f" (this package is tested with {MONGOOSE_VERSION})"
        log(f"pymongoose: building against Mongoose {version} from {directory}{note}")
        return directory

    if _pinned_copy_is_intact(VENDOR_DIR):
        return VENDOR_DIR
    if os.environ.get("PYMONGOOSE_OFFLINE", "") not in ("", "0"):
        raise MongooseSourceError(
            f"PYMONGOOSE_OFFLINE is set and {VENDOR_DIR} holds no verified Mongoose "
            f"{MONGOOSE_VERSION}; build from the project's sdist, which includes it, "
            "run `python vendor/fetch_mongoose.py` while online, or set MONGOOSE_SRC."
        )
    log(f"pymongoose: fetching Mongoose {MONGOOSE_VERSION} ({SDIST_REQUIREMENT} sdist) with pip")
    with tempfile.TemporaryDirectory(prefix="pymongoose-fetch-") as scratch:
        sdist = _download_sdist(Path(scratch))
        _extract_pinned(sdist, VENDOR_DIR)
    log(f"pymongoose: Mongoose {MONGOOSE_VERSION} verified and kept in {VENDOR_DIR}")
    return VENDOR_DIR


if __name__ == "__main__":
    try:
        print(ensure_source())
    except MongooseSourceError as error:
        sys.exit(f"error: {error}")
