"""prebake: prebuilt inference images and one fast inference server.

Importing the package imports no framework, no web server and starts nothing.
"""

__version__ = "0.1.0"
