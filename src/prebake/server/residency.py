"""Which models a SageMaker multi-model endpoint holds, in order of last use, and what must go for one more
to fit.

SageMaker loads models on demand (``POST /models``) and expects the container to say 507 when one does
not fit; prebake first unloads the least recently used models until it does. A model's footprint is
estimated as its size on disk (what it reads into memory, give or take the framework's overhead), and
what fits is ``budget`` bytes (PREBAKE_MULTI_MODEL_MEMORY) or, without one, the memory the container
has available now (its cgroup's limit less its usage, else the machine's MemAvailable).

    >>> r = Residency(budget=100)
    >>> r.add("a", 60); r.add("b", 30); r.touch("a")
    >>> r.victims(50)
    ['b', 'a']
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

from prebake.errors import InsufficientMemory

_CGROUP = Path("/sys/fs/cgroup")


class Residency:
    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.sizes: OrderedDict[str, int] = OrderedDict()  # least recently used first

    def add(self, name: str, size: int) -> None:
        self.sizes[name] = size
        self.sizes.move_to_end(name)

    def touch(self, name: str) -> None:
        if name in self.sizes:
            self.sizes.move_to_end(name)

    def remove(self, name: str) -> None:
        self.sizes.pop(name, None)

    def victims(self, need: int) -> list[str]:
        """The models to unload, least recently used first, so that ``need`` more bytes fit;
        InsufficientMemory where it would not fit with every model unloaded."""
        if self.budget is not None:
            free, total = self.budget - sum(self.sizes.values()), self.budget
        else:
            free = available_memory()
            total = free + sum(self.sizes.values())
        if need > total:
            raise InsufficientMemory(
                f"the model needs about {need:,} bytes and at most {total:,} are available with every "
                "other model unloaded"
            )
        out: list[str] = []
        for name, size in self.sizes.items():
            if free >= need:
                break
            out.append(name)
            free += size
        return out


def footprint(path: Path) -> int:
    """A model's estimated memory: the bytes of its file, or of every file under its folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def available_memory() -> int:
    """Bytes this container can still take: its cgroup v2 limit less its usage where it has a limit,
    else (or if smaller) the machine's MemAvailable."""
    machine = _meminfo_available()
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            used = int((_CGROUP / "memory.current").read_text())
            return max(0, min(machine, int(limit) - used))
    except (OSError, ValueError):
        pass
    return machine


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
