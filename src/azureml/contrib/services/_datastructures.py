"""The small containers AMLRequest and AMLResponse offer, shaped like werkzeug's so score.py code runs as is.

Only the standard library: score.py files import these modules, and the images have no Flask.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO, TypeVar

T = TypeVar("T")


def _convert(value: str, type: Callable[[str], T] | None) -> Any:
    if type is None:
        return value
    return type(value)


class Headers:
    """Case-insensitive, multi-valued HTTP headers kept in order, like ``werkzeug.datastructures.Headers``.

    Iterating yields ``(name, value)`` pairs, so ``dict(request.headers)`` works as with Flask.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = list(items) if items is not None else []

    def get(self, key: str, default: Any = None, type: Callable[[str], T] | None = None) -> Any:
        lower = key.lower()
        for name, value in self._items:
            if name.lower() == lower:
                try:
                    return _convert(value, type)
                except ValueError:
                    return default
        return default

    def getlist(self, key: str, type: Callable[[str], T] | None = None) -> list[Any]:
        lower = key.lower()
        return [_convert(v, type) for k, v in self._items if k.lower() == lower]

    get_all = getlist

    def __getitem__(self, key: str) -> str:
        lower = key.lower()
        for name, value in self._items:
            if name.lower() == lower:
                return value
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        self.remove(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        lower = key.lower()
        return any(name.lower() == lower for name, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def keys(self) -> list[str]:
        return [k for k, _ in self._items]

    def values(self) -> list[str]:
        return [v for _, v in self._items]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def add(self, key: str, value: Any) -> None:
        """Add a header line, keeping any with the same name."""
        self._items.append((key, _header_value(value)))

    add_header = add

    def set(self, key: str, value: Any) -> None:
        """Replace every header of this name with one line (in the place of the first)."""
        lower = key.lower()
        text = _header_value(value)
        for i, (name, _) in enumerate(self._items):
            if name.lower() == lower:
                self._items[i] = (key, text)
                self._items[i + 1 :] = [(k, v) for k, v in self._items[i + 1 :] if k.lower() != lower]
                return
        self._items.append((key, text))

    def setdefault(self, key: str, default: Any) -> str:
        if key in self:
            return self[key]
        self.set(key, default)
        return self[key]

    def remove(self, key: str) -> None:
        lower = key.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lower]

    def pop(self, key: str, default: Any = None) -> Any:
        value = self.get(key, default)
        self.remove(key)
        return value

    def extend(self, other: Iterable[tuple[str, Any]] | dict[str, Any]) -> None:
        pairs = other.items() if isinstance(other, dict) else other
        for key, value in pairs:
            self.add(key, value)

    def to_wsgi_list(self) -> list[tuple[str, str]]:
        return list(self._items)


def _header_value(value: Any) -> str:
    # werkzeug writes str(value) too: AMLResponse sets x-ms-run-function-failed to a bool.
    text = value if isinstance(value, str) else str(value)
    if "\n" in text or "\r" in text:
        raise ValueError("Header values must not contain newline characters.")
    return text


class MultiDict(dict[str, Any]):
    """A dict whose keys may hold several values, like ``werkzeug.datastructures.MultiDict``.

    ``d[key]`` and ``d.get(key)`` give the first value; ``d.getlist(key)`` gives them all.
    """

    def __init__(self, pairs: Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__()
        for key, value in pairs:
            dict.setdefault(self, key, []).append(value)

    def __getitem__(self, key: str) -> Any:
        values = dict.__getitem__(self, key)
        if not values:
            raise KeyError(key)
        return values[0]

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, [value])

    def get(self, key: str, default: Any = None, type: Callable[[Any], T] | None = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def getlist(self, key: str, type: Callable[[Any], T] | None = None) -> list[Any]:
        values = list(dict.get(self, key, []))
        if type is None:
            return values
        converted = []
        for value in values:
            with contextlib.suppress(ValueError, TypeError):
                converted.append(type(value))
        return converted

    def add(self, key: str, value: Any) -> None:
        dict.setdefault(self, key, []).append(value)

    def items(self, multi: bool = False) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for key, values in dict.items(self):
            if multi:
                for value in values:
                    yield key, value
            elif values:
                yield key, values[0]

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        for values in dict.values(self):
            if values:
                yield values[0]

    def lists(self) -> Iterator[tuple[str, list[Any]]]:
        for key, values in dict.items(self):
            yield key, list(values)

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        if flat:
            return dict(self.items())
        return dict(self.lists())

    def copy(self) -> MultiDict:
        return MultiDict(self.items(multi=True))

    def __repr__(self) -> str:
        return f"MultiDict({list(self.items(multi=True))!r})"


class FileStorage:
    """One uploaded file of a multipart/form-data body, like ``werkzeug.datastructures.FileStorage``."""

    def __init__(
        self,
        stream: BinaryIO,
        filename: str | None = None,
        name: str | None = None,
        content_type: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        self.stream = stream
        self.filename = filename
        self.name = name
        self.headers = headers if headers is not None else Headers()
        self.content_type = content_type or self.headers.get("Content-Type") or "application/octet-stream"

    @property
    def mimetype(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def save(self, dst: str | IO[bytes], buffer_size: int = 16384) -> None:
        """Write the file to a path or a binary file object."""
        if isinstance(dst, str):
            with open(dst, "wb") as out:
                shutil.copyfileobj(self.stream, out, buffer_size)
        else:
            shutil.copyfileobj(self.stream, dst, buffer_size)

    def __bool__(self) -> bool:
        return bool(self.filename)

    def __repr__(self) -> str:
        return f"<FileStorage: {self.filename!r} ({self.content_type!r})>"


def empty_stream() -> BinaryIO:
    return io.BytesIO(b"")
