"""The package under test is the installed one, built from the pinned Mongoose."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import pytest

import pymongoose
from pymongoose._binding import ffi, lib

from support import REPO


@pytest.mark.skipif(os.environ.get("PYMONGOOSE_TEST_SOURCE_TREE") == "1",
                    reason="a developer asked to test the in-place build")
def test_tests_import_the_installed_wheel_not_the_source_tree() -> None:
    package_dir = Path(pymongoose.__file__).resolve().parent
    assert package_dir != (REPO / "pymongoose").resolve(), \
        f"tests imported the source tree at {package_dir}, not the installed package"
    dist = metadata.distribution("pymongoose")
    assert Path(str(dist.locate_file("pymongoose/__init__.py"))).resolve() == Path(pymongoose.__file__).resolve()


@pytest.mark.skipif(os.environ.get("PYMONGOOSE_TEST_SOURCE_TREE") == "1",
                    reason="a developer asked to test the in-place build")
def test_wheel_ships_our_licence_and_mongoose_licences() -> None:
    files = {str(f) for f in metadata.files("pymongoose") or []}
    for name in ("LICENSE", "vendor/mongoose/LICENSE", "vendor/mongoose/NOTICE", "vendor/mbedtls/LICENSE",
                 "vendor/zlib/LICENSE"):
        assert any(f.endswith(name) for f in files), f"{name} is not in the installed wheel: {sorted(files)}"
    assert "py.typed" in {Path(f).name for f in files}
    assert metadata.version("pymongoose") == pymongoose.__version__


def test_built_against_mongoose_7_23_with_tls_and_ipv6() -> None:
    assert ffi.string(lib.pm_mongoose_version()).decode() == "7.23"
    features = lib.pm_build_features()
    assert features & lib.PM_HAS_TLS_MBED and not features & lib.PM_HAS_TLS_BUILTIN  # the default
    assert pymongoose.TLS_BACKEND == "mbedtls"
    assert features & lib.PM_HAS_IPV6


def test_public_names() -> None:
    for name in pymongoose.__all__:
        assert hasattr(pymongoose, name), name
    assert pymongoose.WEBSOCKET_OP_TEXT == 1 and pymongoose.WEBSOCKET_OP_BINARY == 2
    assert pymongoose.MG_EV_ERROR == 0 and pymongoose.MG_EV_HTTP_MSG == 11
    assert (REPO / "pymongoose" / "py.typed").exists()
