"""Decode time of a V2 JSON FP32 tensor, 1 row (4 values) and 10,000 values, with and without the JSON parse.

    .venv/bin/python bench/decode.py

The codec checks JSON data against its datatype (issue 13, item 14); this is the price measured on the
hot path. Best of 7 repeats; run it on a quiet machine, before and after a change, in one session.
"""

from __future__ import annotations

import functools
import json
import timeit
from collections.abc import Callable

import numpy as np
import orjson

from prebake import codec


def _body(count: int, shape: list[int]) -> bytes:
    data = np.random.default_rng(0).random(count).round(6).tolist()
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": shape, "data": data}]}).encode()


def _best(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=7))


def main() -> None:
    for label, count, shape in (("1 row (4 FP32)", 4, [1, 4]), ("10,000 FP32", 10_000, [2500, 4])):
        raw = _body(count, shape)
        data = orjson.loads(raw)["inputs"][0]["data"]
        number = 20_000 if count == 4 else 300
        tensor = _best(functools.partial(codec.decode_json_tensor, "x", "FP32", shape, data), number)
        whole = _best(functools.partial(codec.decode_v2_request, raw), number)
        print(
            f"{label}: decode_json_tensor {tensor / number * 1e6:.2f} us; "
            f"decode_v2_request (parse + decode) {whole / number * 1e6:.2f} us"
        )


if __name__ == "__main__":
    main()
