"""The inference server: supervisor, workers, the ASGI app, the backend and its executor."""
