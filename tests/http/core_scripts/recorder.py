"""An entry script that notes the size of every body run() is given (in $PREBAKE_TEST_CALLS), then echoes."""

import os


def init():
    pass


def run(data):
    with open(os.environ["PREBAKE_TEST_CALLS"], "a") as calls:
        calls.write(f"{len(data)}\n")
    return {"size": len(data)}
