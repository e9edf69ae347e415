"""YAML documents that remember where each value came from.

Both the runtime settings and the declarative organisation file promise errors of the form
``FILE:LINE: path.to.key: reason``. PyYAML's constructed objects forget their positions, so
we compose the node tree ourselves and record, for every mapping key and sequence item, the
line it starts on. Pydantic's error locations are then translated back to those lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

Loc = tuple[str | int, ...]


class SourceError(Exception):
    """An error in a YAML source file, reported as ``FILE:LINE: KEY: REASON``.

    ``line`` is 1-based; ``key`` is the dotted path of the offending value (may be empty when
    the problem is the file itself, e.g. a syntax error). Subclasses exist only so callers can
    tell configuration errors from organisation-file errors.
    """

    def __init__(self, file: str, line: int | None, key: str, reason: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


@dataclass
class YamlDocument:
    """Plain Python data plus the line of every key/item, keyed by its location tuple."""

    data: Any
    source: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_for(self, loc: Iterable[str | int]) -> int | None:
        """The line of ``loc``, or of its nearest ancestor present in the file.

        A missing key has no line of its own; its parent mapping is the best place to point.
        """
        loc = tuple(loc)
        while True:
            if loc in self.lines:
                return self.lines[loc]
            if not loc:
                return None
            loc = loc[:-1]


def format_loc(loc: Iterable[str | int]) -> str:
    """``('locations', 0, 'numbers', 2)`` -> ``locations[0].numbers[2]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml(
    path: str | Path,
    error_cls: type[SourceError] = SourceError,
    *,
    scalars_as_text: bool = False,
) -> YamlDocument:
    """Read and compose one YAML document, keeping line numbers.

    With ``scalars_as_text`` every plain scalar except null stays the text the author typed:
    the organisation file has no numeric fields, and YAML 1.1 would otherwise turn
    ``+15125550100`` into an int (dropping the ``+``), ``0123`` into octal 83, postal code
    ``02134`` into 2134 and the country code ``NO`` into ``False``.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error_cls(source, 1, "", f"cannot read file: {reason}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        doc = YamlDocument(data=None, source=source)
        if node is not None:
            doc.data = _Builder(loader, doc, error_cls, scalars_as_text).build(node, ())
            doc.lines.setdefault((), node.start_mark.line + 1)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = " ".join(p for p in (exc.context, exc.problem) if p)
        raise error_cls(source, line, "", f"YAML syntax error: {reason}") from None
    except yaml.YAMLError as exc:
        raise error_cls(source, 1, "", f"YAML error: {exc}") from None
    finally:
        loader.dispose()


class _Builder:
    def __init__(
        self,
        loader: yaml.SafeLoader,
        doc: YamlDocument,
        error_cls: type[SourceError],
        scalars_as_text: bool,
    ) -> None:
        self.loader = loader
        self.doc = doc
        self.error_cls = error_cls
        self.scalars_as_text = scalars_as_text

    def fail(self, node: yaml.Node, loc: Loc, reason: str) -> SourceError:
        return self.error_cls(self.doc.source, node.start_mark.line + 1, format_loc(loc), reason)

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        if isinstance(node, yaml.MappingNode):
            # Resolves YAML merge keys (<<: *anchor) in place, as SafeLoader would.
            self.loader.flatten_mapping(node)
            out: dict[str, Any] = {}
            first_seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, loc, "keys must be plain text")
                key = key_node.value
                key_line = key_node.start_mark.line + 1
                if key in first_seen:
                    raise self.fail(
                        key_node, loc + (key,), f"duplicate key (first given on line {first_seen[key]})"
                    )
                first_seen[key] = key_line
                self.doc.lines[loc + (key,)] = key_line
                out[key] = self.build(value_node, loc + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.doc.lines[loc + (index,)] = item.start_mark.line + 1
                items.append(self.build(item, loc + (index,)))
            return items
        return self.scalar(node)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if self.scalars_as_text:
            # The composer already resolved the implicit tag; only plain scalars can be null.
            if node.style is None and node.tag == "tag:yaml.org,2002:null":
                return None
            return node.value
        return self.loader.construct_object(node, deep=True)


_TYPE_REASONS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "path_type": "must be a file path",
}


def _reason(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind in ("value_error", "assertion_error"):
        return str(err["ctx"]["error"])
    if kind in _TYPE_REASONS:
        value = err.get("input")
        shown = type(value).__name__ if isinstance(value, (dict, list)) else repr(value)
        return f"{_TYPE_REASONS[kind]}, got {shown}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {err['ctx']['expected']}, got {err.get('input')!r}"
    msg: str = err["msg"]
    return msg[:1].lower() + msg[1:]


def source_errors(
    exc: ValidationError, doc: YamlDocument, error_cls: type[SourceError]
) -> list[SourceError]:
    """Translate every pydantic error into a located SourceError, most useful first."""
    located = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        error = error_cls(doc.source, doc.line_for(loc), format_loc(loc), _reason(err))
        # A missing key is most often the consequence of a misspelt one ("nmae"), which is
        # the error worth showing first; so missing keys sort after everything else.
        located.append((err["type"] == "missing", error.line or 0, error))
    located.sort(key=lambda item: item[:2])
    return [error for _, _, error in located]
