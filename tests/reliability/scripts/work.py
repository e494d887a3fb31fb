"""An entry script for load and fault tests: answers its pid, sleeps, hangs or allocates on request."""

import json
import os
import time


def init():
    pass


def run(data):
    request = json.loads(data) if data else {}
    if "sleep" in request:
        time.sleep(float(request["sleep"]))
    if "allocate_mb" in request:
        # Touch every page so the memory is really used, as a model's tensors would be.
        block = bytearray(int(request["allocate_mb"]) * 1024 * 1024)
        block[::4096] = b"\x01" * len(block[::4096])
        return {"pid": os.getpid(), "allocated": len(block)}
    return {"pid": os.getpid(), "echo": request.get("echo")}
