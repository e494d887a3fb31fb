"""System shared memory regions (Triton's shared memory extension): registered by clients, for the whole server.

A client creates a POSIX shared memory object (``shm_open("/name")``, as tritonclient.utils.shared_memory
does), registers part of it under a region name, and then names the region in requests: inputs are read
from it and outputs written to it instead of travelling in the request and response bodies.

With several workers a registration is the whole server's: it is recorded in ``shm.state`` in the
server's state directory (as ``control.py`` records repository state), and each worker maps a region by
its key the first time a request of its own names it, remapping or dropping it when the record changes.
So a region registered through one worker is used by any, and one unregistered is gone for all.

Safety: registration is off unless the server was started with ``--allow-client-shm`` (as Triton's
option); a key is one name in /dev/shm (no further "/", no "." or ".."), opened without following links,
and must be a regular file large enough for the region; every read and write checks the object still
is (a client that shrinks it would otherwise crash the worker with SIGBUS). Inputs are copied out of
the region, so a model never holds memory the client can unregister. The messages are Triton's
(triton-inference-server/server, src/shared_memory_manager.cc, src/common.cc and src/http_server.cc);
where Triton answers 500 for what a client named (a key that does not exist), this is a 400.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from prebake.errors import InvalidInput, NotFound, PrebakeError, echo

logger = logging.getLogger("prebake.shm")

SHM_DIR = Path("/dev/shm")
STATE = "shm.state"
#: Triton reserves keys with this prefix for its Python backend's own regions (common.h).
RESERVED_PREFIX = "triton_python_backend_shm_region_"
DISABLED = "Client shared memory is disabled. Start the server with '--allow-client-shm' to enable."
NAME_MAX = 255


class ShmDisabled(PrebakeError):
    """Registration asked of a server started without --allow-client-shm (Triton: UNSUPPORTED, 501)."""

    status = 501


@dataclass(frozen=True, slots=True)
class Record:
    """One registration: what every worker maps. ``token`` tells a re-registration from the old one."""

    key: str
    offset: int
    byte_size: int
    token: str


class _Mapped:
    """A worker's mapping of one region: the object's descriptor, kept to check its size on each use."""

    __slots__ = ("record", "fd", "map", "start")

    def __init__(self, record: Record, fd: int, region: mmap.mmap, start: int) -> None:
        self.record = record
        self.fd = fd
        self.map = region
        self.start = start  # where the region begins in the map (mmap offsets are page-aligned)

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self.map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class SharedMemoryRegistry:
    """The server's system shared memory regions (``types.SharedMemory``); ``directory`` None: one worker,
    nothing shared. ``allowed``: whether clients may register regions (--allow-client-shm)."""

    def __init__(self, directory: Path | None, *, allowed: bool) -> None:
        self.directory = directory
        self.allowed = allowed
        self._records: dict[str, Record] = {}
        self._seen: int | None = None  # the inode of the state file last read (held open: see _refresh)
        self._held: int | None = None
        self._mapped: dict[str, _Mapped] = {}
        self._lock = threading.Lock()  # large bodies are decoded on threads

    # -- the extension's API ----------------------------------------------------------------------------
    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        if not self.allowed:
            raise ShmDisabled(DISABLED)
        if not name:
            raise InvalidInput("'region name' is necessary to register system shared memory region")
        path = _key_path(name, key)
        if byte_size <= 0 or offset < 0:
            raise InvalidInput(
                f"failed to register shared memory region '{echo(name)}': invalid args "
                "(byte_size must be at least 1 and offset at least 0)"
            )
        record = Record(key, offset, byte_size, uuid.uuid4().hex)
        with self._lock, self._shared():
            self._refresh()
            if name in self._records:
                raise InvalidInput(f"shared memory region '{echo(name)}' already in manager")
            mapped = _open(name, path, record)  # refuses what cannot be mapped before it is recorded
            self._records[name] = record
            self._store()
            self._mapped[name] = mapped

    def unregister(self, name: str | None) -> None:
        """One region, or every one (``None``); a name not registered is no error, as in Triton."""
        if not self.allowed:
            raise ShmDisabled(DISABLED)
        with self._lock, self._shared():
            self._refresh()
            names = list(self._records) if name is None else [name]
            for each in names:
                self._records.pop(each, None)
                mapped = self._mapped.pop(each, None)
                if mapped is not None:
                    mapped.close()
            self._store()

    def status(self, name: str | None) -> list[dict[str, Any]]:
        with self._lock:
            self._refresh()
            if name is not None and name not in self._records:
                raise NotFound(f"Unable to find system shared memory region: '{echo(name)}'")
            names = list(self._records) if name is None else [name]
            return [
                {
                    "name": each,
                    "key": self._records[each].key,
                    "offset": self._records[each].offset,
                    "byte_size": self._records[each].byte_size,
                }
                for each in names
            ]

    # -- tensors ----------------------------------------------------------------------------------------
    def check(self, region: str, offset: int, byte_size: int) -> None:
        """InvalidInput unless ``byte_size`` bytes at ``offset`` lie inside ``region``."""
        with self._lock:
            self._place(region, offset, byte_size)

    def read(self, region: str, offset: int, byte_size: int) -> bytes:
        """A copy of ``byte_size`` bytes at ``offset`` into ``region``."""
        with self._lock:
            mapped, start = self._place(region, offset, byte_size)
            return mapped.map[start : start + byte_size]

    def write(self, region: str, offset: int, byte_size: int, data: bytes, tensor: str) -> None:
        """``data`` (an output's bytes) into ``region`` at ``offset``, where ``byte_size`` is room enough."""
        if len(data) > byte_size:
            raise InvalidInput(
                f"shared memory size specified with the request for output '{echo(tensor)}' "
                f"({byte_size} bytes) should be at least {len(data)} bytes to hold the results"
            )
        with self._lock:
            mapped, start = self._place(region, offset, byte_size)
            mapped.map[start : start + len(data)] = data

    def close(self) -> None:
        with self._lock:
            for mapped in self._mapped.values():
                mapped.close()
            self._mapped.clear()
            self._hold(None)

    # -- inside -----------------------------------------------------------------------------------------
    def _place(self, region: str, offset: int, byte_size: int) -> tuple[_Mapped, int]:
        """This worker's mapping of ``region`` and where ``offset`` is in it, checked (Triton's
        GetMemoryInfo): the region is registered, the bytes lie inside it, and the object still holds them."""
        self._refresh()
        record = self._records.get(region)
        if record is None:
            raise InvalidInput(f"Unable to find shared memory region: '{echo(region)}'")
        if offset < 0 or offset >= record.byte_size:
            raise InvalidInput(f"Invalid offset for shared memory region: '{echo(region)}'")
        if byte_size < 0 or offset + byte_size > record.byte_size:
            raise InvalidInput(f"Invalid offset + byte size for shared memory region: '{echo(region)}'")
        mapped = self._mapped.get(region)
        if mapped is None or mapped.record != record:
            if mapped is not None:
                mapped.close()
            mapped = self._mapped[region] = _open(region, _key_path(region, record.key), record)
        try:
            size = os.fstat(mapped.fd).st_size
        except OSError:
            size = -1
        if size < record.offset + record.byte_size:
            raise InvalidInput(
                f"shared memory region '{echo(region)}' (key '{echo(record.key)}') is smaller than it was "
                f"registered; register it again"
            )
        return mapped, mapped.start + offset

    def _refresh(self) -> None:
        """Take the registrations another worker recorded, when the state file changed since it was read.

        Every change replaces the file, so a new inode number means a change; the last file read is held
        open, so its inode number cannot be handed to a newer file meanwhile (timestamps and sizes could
        repeat within a clock tick)."""
        if self.directory is None:
            return
        path = self.directory / STATE
        try:
            inode: int | None = os.stat(path).st_ino
        except FileNotFoundError:
            inode = None
        if inode == self._seen:
            return
        records: dict[str, Record] = {}
        held = None
        if inode is not None:
            try:
                held = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                with os.fdopen(os.dup(held), "rb") as file:
                    doc = orjson.loads(file.read())
                records = {name: Record(**entry) for name, entry in doc.get("regions", {}).items()}
                inode = os.fstat(held).st_ino
            except (OSError, ValueError, TypeError) as error:
                if held is not None:
                    os.close(held)
                logger.error("cannot read the shared memory registrations: %s", error)
                return
        self._hold(held)
        self._records, self._seen = records, inode
        for name in [n for n, m in self._mapped.items() if records.get(n) != m.record]:
            self._mapped.pop(name).close()

    def _hold(self, fd: int | None) -> None:
        if self._held is not None:
            os.close(self._held)
        self._held = fd

    def _store(self) -> None:
        if self.directory is None:
            return
        doc = {
            "regions": {
                name: {"key": r.key, "offset": r.offset, "byte_size": r.byte_size, "token": r.token}
                for name, r in self._records.items()
            }
        }
        path = self.directory / STATE
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            tmp.write_bytes(orjson.dumps(doc))
            tmp.replace(path)
            held = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise PrebakeError(
                f"cannot record the shared memory registration in {self.directory}: {error.strerror}"
            ) from None
        self._hold(held)
        self._seen = os.fstat(held).st_ino

    @contextlib.contextmanager
    def _shared(self) -> Iterator[None]:
        """Registration and unregistration, one worker at a time (read, change, write the record)."""
        if self.directory is None:
            yield
            return
        with open(self.directory / ".shm.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._seen = None  # read the record afresh under the lock
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _key_path(name: str, key: str) -> Path:
    """The /dev/shm file of ``key``: one name, as shm_open takes it; InvalidInput for anything else."""
    stripped = key.lstrip("/")
    if not stripped:
        raise InvalidInput(
            f"cannot register shared memory region '{echo(name)}' - invalid shm key '{echo(key)}'"
        )
    if stripped.startswith(RESERVED_PREFIX):
        raise InvalidInput(
            f"cannot register shared memory region '{echo(name)}' with key '{echo(key)}' as the key "
            f"contains the reserved prefix '{RESERVED_PREFIX}'"
        )
    if "/" in stripped or stripped in (".", "..") or "\0" in stripped or len(stripped) > NAME_MAX:
        raise InvalidInput(
            f"cannot register shared memory region '{echo(name)}' - invalid shm key '{echo(key)}': a key is "
            "one name, as shm_open takes it (\"/name\", no further '/')"
        )
    return SHM_DIR / stripped


def _open(name: str, path: Path, record: Record) -> _Mapped:
    """Open and map the region's object, or InvalidInput saying why not."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise InvalidInput(f"Unable to open shared memory region: '{echo(record.key)}'") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"Invalid shared memory region: '{echo(record.key)}'")
        if record.offset + record.byte_size > info.st_size:
            raise InvalidInput(f"failed to register shared memory region '{echo(name)}': invalid args")
        start = record.offset % mmap.ALLOCATIONGRANULARITY
        region = mmap.mmap(fd, start + record.byte_size, offset=record.offset - start)
    except OSError as error:
        os.close(fd)
        raise InvalidInput(
            f"failed to register shared memory region '{echo(name)}': unable to process address space "
            f"{error.strerror}"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return _Mapped(record, fd, region, start)
