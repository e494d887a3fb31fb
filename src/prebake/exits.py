"""Named exit codes, shared by every command."""

OK = 0
FAILURE = 1
USAGE = 2  # bad flags or configuration: the user can fix the command line
INIT_FAILED = 3  # the model or entry script failed to load (azmlinfsrv also exits 3 here)
NOT_FOUND = 4  # an unknown image, model or file
ENGINE_MISSING = 5  # no podman or docker
BUILD_FAILED = 6
CHECK_FAILED = 7
