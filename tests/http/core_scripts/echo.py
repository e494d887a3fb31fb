"""An entry script for server-core tests: echoes, sleeps, raises and reports its pid on request."""

import json
import os
import time

calls = 0


def init():
    global started
    started = time.time()


def run(data):
    global calls
    calls += 1
    request = json.loads(data) if data else {}
    if "sleep" in request:
        time.sleep(float(request["sleep"]))
    if request.get("raise"):
        raise ValueError("the model refused this input")
    if request.get("spin"):
        deadline = time.time() + float(request["spin"])
        while time.time() < deadline:  # holds the GIL, unlike sleep
            pass
    return {"pid": os.getpid(), "echo": request.get("echo"), "calls": calls}
