"""Extending prebuilt images: packages at start without a rebuild, derived images, pre-deploy checks and
image recommendations. Each job is one module; nothing here is imported by ``import prebake``.

    pins.py       the image's pins (lock file or installed distributions) and conflicts against them
    layer.py      a content-hashed, atomically renamed package layer in a cache directory
    startup.py    ``prepare()``: the environment variables to the paths workers put on sys.path
    extend.py     ``prebake extend``: a Containerfile FROM a prebuilt image, built and smoke-tested
    check.py      ``prebake check``: requirements, model and entry script validated before deploy
    probe.py      a standalone script check.py runs in a subprocess (or inside the image)
    recommend.py  ``prebake recommend``: the catalog image that matches a saved model or script
"""

# The environment variables that make a start install or add packages (light, so the server can check them
# without importing the extension code).
REQUIREMENTS_VARS = ("PREBAKE_EXTRA_REQUIREMENTS", "AZUREML_EXTRA_REQUIREMENTS_TXT")
PYTHON_PATH_VARS = ("PREBAKE_EXTRA_PYTHON_PATH", "AZUREML_EXTRA_PYTHON_LIB_PATH")
