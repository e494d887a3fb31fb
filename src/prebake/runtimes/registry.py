"""Runtime names -> implementations; only the chosen module is imported.

Example::

    runtime = create_runtime(ModelSettings(name="iris", path=Path("model.joblib"), runtime="sklearn"))
    runtime.load()
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from prebake import frameworks
from prebake.errors import ConfigError, ModelLoadError
from prebake.runtimes.base import ModelSettings, RawRuntime, Runtime


class Entry(NamedTuple):
    target: str  # "module:Class"
    install: str  # what to pip install when the framework is missing


RUNTIMES: dict[str, Entry] = {f.runtime: Entry(f.target, f.install) for f in frameworks.FRAMEWORKS}


def runtime_class(name: str) -> type[Runtime] | type[RawRuntime]:
    """The class registered under ``name``; ConfigError for a name that is not in the table."""
    try:
        entry = RUNTIMES[name]
    except KeyError:
        raise ConfigError(f"unknown runtime {name!r}; known runtimes: {', '.join(RUNTIMES)}") from None
    module_name, _, class_name = entry.target.partition(":")
    cls: type[Runtime] | type[RawRuntime] = getattr(importlib.import_module(module_name), class_name)
    return cls


def create_runtime(settings: ModelSettings) -> Runtime | RawRuntime:
    """A runtime for ``settings``, not yet loaded. Its framework is imported by ``load()``, which raises
    ModelLoadError naming the package to install where the framework is missing."""
    cls = runtime_class(settings.runtime)
    return cls(settings)  # type: ignore[call-arg]


def missing_framework(runtime: str, exc: ImportError) -> ModelLoadError:
    """ModelLoadError for a framework that is not installed, naming what to install."""
    install = RUNTIMES[runtime].install if runtime in RUNTIMES else runtime
    return ModelLoadError(
        f"the {runtime} runtime needs a package that is not installed ({exc.name or exc}): "
        f"pip install {install}, or use an image that has it"
    )
