"""A reader for Caffe's text network definitions (``.prototxt``).

Protobuf text format, as Caffe writes it: ``key: value`` scalars, ``key { ... }`` messages
(the colon before ``{`` is optional), ``#`` comments, and the bracket list ``key: [1, 2, 3]``
that Caffe's 3D fork uses for kernel, stride and pad. Every field is kept as a list because
any protobuf field may repeat; :class:`Message` offers ``get`` (last value, protobuf's rule for
a repeated singular field) and ``getall`` for the rest.

The parser is schema-free: it does not know which fields exist, so it reads the 3D fork's
extensions (``length_first``, ``mem_param``, ...) as easily as upstream Caffe's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<punct>[{}\[\]:,;<>])
  | (?P<word>[^\s{}\[\]:,;<>"'\#]+)
    """,
    re.VERBOSE,
)


class PrototxtError(ConfigError):
    """A prototxt that cannot be parsed; the message names the file and line."""


@dataclass
class Message:
    """One protobuf message: field name -> list of values (scalars or messages)."""

    fields: dict[str, list[Any]] = field(default_factory=dict)
    line: int = 0  # where the message opens in its file, for error messages

    def add(self, key: str, value: Any) -> None:
        self.fields.setdefault(key, []).append(value)

    def get(self, key: str, default: Any = None) -> Any:
        values = self.fields.get(key)
        return values[-1] if values else default

    def getall(self, key: str) -> list[Any]:
        return list(self.fields.get(key, []))

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def __repr__(self) -> str:
        return f"Message({self.fields!r})"


@dataclass
class Layer:
    """A layer of a network definition, with the fields this project reads made explicit."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    message: Message

    @property
    def line(self) -> int:
        return self.message.line

    def param(self, section: str) -> Message:
        """The ``<section>`` sub-message, e.g. ``convolution_param``; empty if absent."""
        return self.message.get(section) or Message()


@dataclass
class Net:
    name: str
    layers: list[Layer]
    message: Message
    source: str = "<string>"

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"{self.source}: no layer named {name!r}")

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)


class _Tokens:
    def __init__(self, text: str, source: str):
        self.source = source
        self.items: list[tuple[str, str, int]] = []
        line = 1
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise PrototxtError(f"{source}:{line}: unexpected character {text[pos]!r}")
            kind = match.lastgroup
            value = match.group()
            if kind != "space":
                self.items.append((kind, value, line))
            line += value.count("\n")
            pos = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.items[self.index] if self.index < len(self.items) else None

    def next(self, what: str) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            last_line = self.items[-1][2] if self.items else 1
            raise PrototxtError(f"{self.source}:{last_line}: unexpected end of file, expected {what}")
        self.index += 1
        return token

    def error(self, token: tuple[str, str, int], what: str) -> PrototxtError:
        return PrototxtError(f"{self.source}:{token[2]}: expected {what}, found {token[1]!r}")


def _scalar(kind: str, text: str) -> Any:
    if kind == "string":
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text.rstrip("fF")) if lowered not in ("inf", "nan") else float(lowered)
    except ValueError:
        return text  # an enum value such as AVE, MAX, TRAIN, RGB


def _parse_message(tokens: _Tokens, closing: str | None, line: int = 0) -> Message:
    message = Message(line=line)
    while True:
        token = tokens.peek()
        if token is None:
            if closing is not None:
                tokens.next(f"'{closing}'")
            return message
        if token[0] == "punct" and token[1] == closing:
            tokens.index += 1
            return message
        if token[0] == "punct" and token[1] in ",;":
            tokens.index += 1
            continue
        key_token = tokens.next("a field name")
        if key_token[0] != "word":
            raise tokens.error(key_token, "a field name")
        key = key_token[1]
        token = tokens.next(f"a value for {key!r}")
        if token[1] == ":":
            token = tokens.next(f"a value for {key!r}")
        if token[1] in ("{", "<"):
            message.add(key, _parse_message(tokens, "}" if token[1] == "{" else ">", key_token[2]))
        elif token[1] == "[":
            while True:
                item = tokens.next(f"a list item for {key!r}")
                if item[1] == "]":
                    break
                if item[1] == ",":
                    continue
                if item[0] not in ("word", "string"):
                    raise tokens.error(item, f"a list item for {key!r}")
                message.add(key, _scalar(item[0], item[1]))
        elif token[0] in ("word", "string"):
            message.add(key, _scalar(token[0], token[1]))
        else:
            raise tokens.error(token, f"a value for {key!r}")


def parse_text(text: str, source: str = "<string>") -> Message:
    """Parse protobuf text format into a :class:`Message` tree."""
    return _parse_message(_Tokens(text, source), closing=None)


def parse_net(text: str, source: str = "<string>") -> Net:
    """Parse a network definition; both ``layer`` and the legacy V1 ``layers`` field are read."""
    root = parse_text(text, source)
    layers = []
    for index, message in enumerate(root.getall("layer") + root.getall("layers")):
        layers.append(
            Layer(
                name=str(message.get("name", f"layer{index}")),
                type=str(message.get("type", "")),
                bottoms=[str(b) for b in message.getall("bottom")],
                tops=[str(t) for t in message.getall("top")],
                message=message,
            )
        )
    return Net(name=str(root.get("name", "")), layers=layers, message=root, source=source)


def load_net(path: str | Path) -> Net:
    path = Path(path)
    return parse_net(path.read_text(encoding="utf-8"), source=str(path))


def triple(message: Message, key: str, default: int, *, spatial_keys: tuple[str, str] | None = None) -> tuple[int, int, int]:
    """Read a Caffe ``[T, H, W]`` size (``kernel_size``, ``stride``, ``pad``).

    One value applies to all three axes; three values are T, H, W; two values are H, W for a 2D
    layer (T then 1 for kernel/stride, 0 for pad). ``kernel_h``-style fields win when present.
    """
    values = [int(v) for v in message.getall(key)]
    if not values:
        values = [default]
    if len(values) == 1:
        t = h = w = values[0]
    elif len(values) == 2:
        t, (h, w) = (0 if key == "pad" else 1), values
    elif len(values) == 3:
        t, h, w = values
    else:
        raise PrototxtError(f"{key}: expected 1 to 3 values, got {values}")
    if spatial_keys is not None:
        h = int(message.get(spatial_keys[0], h))
        w = int(message.get(spatial_keys[1], w))
    return t, h, w
