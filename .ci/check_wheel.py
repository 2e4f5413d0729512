"""Check what a release wheel carries: `python .ci/check_wheel.py dist/*.whl`.

Every wheel must hold the package (every module of the source tree's pymongoose/,
subpackages included) with its compiled extension and py.typed, our
licence, Mongoose's (GPLv2 text and Cesanta's notice), mbed TLS's and zlib's, metadata naming the
licence expression and Python versions, and nothing else: no tests, no C build
leftovers, no vendored sources.
"""

import re
import sys
import zipfile
from pathlib import Path

REQUIRED = ["pymongoose/__init__.py", "pymongoose/py.typed", "licenses/LICENSE",
            "licenses/vendor/mongoose/LICENSE", "licenses/vendor/mongoose/NOTICE",
            "licenses/vendor/mbedtls/LICENSE", "licenses/vendor/zlib/LICENSE"]
FORBIDDEN = re.compile(r"(^tests/|^vendor/|^benchmarks/|\.c$|\.o$|\.h$|_mongoose_cffi\.c)")


def check(path: Path) -> list:
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        for wanted in REQUIRED:
            if not any(name.endswith(wanted) for name in names):
                problems.append(f"lacks {wanted}")
        package = Path(__file__).resolve().parent.parent / "pymongoose"
        for module in sorted(package.rglob("*.py")):
            wanted = module.relative_to(package.parent).as_posix()
            if wanted not in names:
                problems.append(f"lacks {wanted}")
        if not any(re.match(r"pymongoose/_mongoose_cffi\..*\.so$", name) for name in names):
            problems.append("lacks the compiled extension")
        problems += [f"carries {name}" for name in names if FORBIDDEN.search(name)]
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        source = (Path(__file__).resolve().parent.parent / "pymongoose" / "__init__.py").read_text()
        version = re.search(r'^__version__ = "([^"]+)"', source, re.MULTILINE)[1]
        licence = "License-Expression: MIT AND GPL-2.0-only AND (Apache-2.0 OR GPL-2.0-or-later) AND Zlib"
        for line in (f"Version: {version}", licence, "Requires-Python: >=3.9",
                     "Classifier: Programming Language :: Python :: Implementation :: PyPy"):
            if line not in metadata.splitlines():
                problems.append(f"metadata lacks {line!r}")
    if "-cp39-abi3-" not in path.name and "-pp39-" not in path.name:
        problems.append("is tagged neither cp39-abi3 nor pp39")
    if not re.search(r"manylinux_2_17_(x86_64|aarch64)\b", path.name):
        problems.append("is not manylinux_2_17 for x86_64 or aarch64")
    return problems


def main() -> int:
    failed = False
    for arg in sys.argv[1:]:
        problems = check(Path(arg))
        print(f"{Path(arg).name}: {'ok' if not problems else '; '.join(problems)}")
        failed = failed or bool(problems)
    return 1 if failed or len(sys.argv) < 2 else 0


if __name__ == "__main__":
    sys.exit(main())
