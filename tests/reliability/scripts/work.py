"""An entry script for load and fault tests: answers its pid; sleeps, spins or allocates on request.

With PREBAKE_TEST_MARKS set to a directory, run() notes each request's "id" there as it starts, so a
test can tell which requests the server really began. PREBAKE_TEST_INIT_SLEEP makes init() take that
many seconds; {"regex": n} runs a catastrophic regular expression (it holds the GIL for ages).
"""

import json
import os
import re
import time

marks = None


def init():
    global marks
    time.sleep(float(os.environ.get("PREBAKE_TEST_INIT_SLEEP") or 0))
    folder = os.environ.get("PREBAKE_TEST_MARKS")
    if folder:
        marks = open(os.path.join(folder, str(os.getpid())), "a", buffering=1)  # noqa: SIM115


def run(data):
    request = json.loads(data) if data else {}
    if marks is not None and "id" in request:
        marks.write(request["id"] + "\n")
    if "regex" in request:
        re.match(r"(a+)+$", "a" * int(request["regex"]) + "b")
    if "sleep" in request:
        time.sleep(float(request["sleep"]))
    if "spin" in request:
        deadline = time.time() + float(request["spin"])
        while time.time() < deadline:  # holds the GIL, as a pure-Python model would
            pass
    if "allocate_mb" in request:
        # Touch every page so the memory is really used, as a model's tensors would be.
        block = bytearray(int(request["allocate_mb"]) * 1024 * 1024)
        block[::4096] = b"\x01" * len(block[::4096])
        return {"pid": os.getpid(), "allocated": len(block)}
    return {"pid": os.getpid(), "echo": request.get("echo")}
