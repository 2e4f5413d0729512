"""Coverage-guided fuzzing of the Python-facing parsers with atheris (CPython).

    .venv-test/bin/pip install atheris
    .venv-test/bin/python tests/fuzz/fuzz_parsers.py -atheris_runs=500000

Each input goes through the JSON, URL, multipart, MQTT SUBSCRIBE and header helpers;
anything but a result or a TypeError/ValueError is a failure (and a crash, a crash).
"""

import sys

import atheris

with atheris.instrument_imports():
    from pymongoose import (
        http_parse_multipart,
        json_get,
        json_get_bool,
        json_get_long,
        json_get_num,
        json_get_str,
        url_decode,
        url_encode,
        url_host,
        url_port,
        url_uri,
        url_user,
    )
    from pymongoose.http import format_headers
    from pymongoose.mqtt import parse_subscribe


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 200))
    path = "$" + fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 20))
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400))
    calls = [
        lambda: json_get(text, path), lambda: json_get_num(raw, path), lambda: json_get_bool(text, path),
        lambda: json_get_long(raw, path, 1), lambda: json_get_str(text, path),
        lambda: url_encode(raw), lambda: url_decode(text, form=True), lambda: url_host(text),
        lambda: url_port(text), lambda: url_uri(text), lambda: url_user(text),
        lambda: http_parse_multipart(raw, fdp.ConsumeIntInRange(0, len(raw))),
        lambda: parse_subscribe(raw), lambda: format_headers({text[:10]: text[10:]}),
    ]
    for call in calls:
        try:
            call()
        except (TypeError, ValueError):
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
