"""YAML loading that remembers where every value came from, for errors that name a line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class SourceIssue:
    """A problem found in a file: where, which field, what was expected."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class SourceError(Exception):
    """One or more problems in a config file; ``str()`` lists them one per line."""

    def __init__(self, issues: list[SourceIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def dotted(path: PathKey) -> str:
    """('environments', 0, 'services') -> 'environments[0].services'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(frozen=True, slots=True)
class YamlSource:
    file: str
    data: Any
    lines: dict[PathKey, int]

    def line_of(self, path: PathKey) -> int | None:
        """Line of the deepest known prefix of path (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def issue(self, path: PathKey, message: str) -> SourceIssue:
        return SourceIssue(self.file, self.line_of(path), dotted(path), message)


# A hostile file must cost bounded time and memory and give a message, never a crash.
# A real config nests under 10 levels (environments > services > checks > a check's keys);
# 64 leaves room for any hand-written one. Refused while composing, as the parser goes:
# Python's composer recurses once per level (1,000 levels exhaust its stack), and both
# scanners rescan every open flow level at each token (libyaml, which stops at 1,000
# levels, took 10 s on a 1.2 MB file 999 levels deep before this bound).
MAX_DEPTH = 64
# Nodes after expanding aliases: a 1,000-check config has ~15,000, so 250,000 allows
# 15,000 checks. A 342-byte "billion laughs" file (nine aliases of nine, nine levels)
# expands to 387 million nodes; it is refused before anything is expanded.
MAX_NODES = 250_000
# A 1,000-check config is ~100 kB; a file over 16 MiB is refused unread (a log, a device).
MAX_BYTES = 16 * 1024 * 1024
# libyaml's own messages for larger files: the pure-Python parser is ~10 times slower.
MAX_FALLBACK_BYTES = 256 * 1024


class _BoundsError(yaml.composer.ComposerError):
    """A file over a bound: said as it is, without a second parse."""


class _DepthBound(yaml.composer.Composer):
    """PyYAML's composer, refusing nesting deeper than MAX_DEPTH as it composes."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[attr-defined]
                raise _BoundsError(None, None, _too_deep(), event.start_mark if event else None)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _BoundedSafeLoader(_DepthBound, yaml.SafeLoader):
    """The pure-Python loader: its error messages, or the loader where libyaml is missing."""


def _c_loader() -> type[yaml.SafeLoader] | None:
    """libyaml's parser under the bounded Python composer, where PyYAML was built with it:
    1,000 checks load in ~0.13 s, not ~0.7 s."""
    c_parser = getattr(getattr(yaml, "_yaml", None), "CParser", None)
    if c_parser is None:
        return None

    class Loader(
        _DepthBound,
        c_parser,  # type: ignore[misc,valid-type]
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
    ):
        def __init__(self, stream: str) -> None:
            c_parser.__init__(self, stream)  # type: ignore[misc]
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return Loader


_LOADER: type[yaml.SafeLoader] = _c_loader() or _BoundedSafeLoader


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels"


def _read(path: Path) -> str:
    file = str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SourceError([SourceIssue(file, None, "", f"cannot read: {exc.strerror}")]) from exc
    if len(raw) > MAX_BYTES:
        raise SourceError([SourceIssue(file, None, "", _too_big())])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            [SourceIssue(file, None, "", f"not UTF-8 text (byte {exc.start})")]
        ) from exc


def _too_big() -> str:
    return f"larger than {MAX_BYTES // (1024 * 1024)} MiB; a config is far smaller"


def _compose(
    text: str, loader_type: type[yaml.SafeLoader]
) -> tuple[yaml.Node | None, yaml.SafeLoader]:
    """Parse once: compose the node graph and check its size and depth; the caller
    constructs from the same loader and disposes of it."""
    loader = loader_type(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_bounds(node)
    except BaseException:
        loader.dispose()
        raise
    return node, loader


def _check_bounds(root: yaml.Node) -> None:
    """Refuse graphs nested deeper than MAX_DEPTH, expanding past MAX_NODES, or recursive
    (an alias inside its own anchor). Sizes are memoized per node, so a billion laughs costs
    a pass over the file's own nodes, not over their expansion."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            if height[key] > MAX_DEPTH:
                raise _BoundsError(None, None, _too_deep(), node.start_mark)
            if size[key] > MAX_NODES:
                raise _BoundsError(
                    None,
                    None,
                    f"expands to more than {MAX_NODES:,} values (aliases of aliases?)",
                    node.start_mark,
                )
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise _BoundsError(
                    None,
                    None,
                    "an alias refers to its own anchor (a recursive structure)",
                    child.start_mark,
                )
            if id(child) not in size:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_yaml(path: Path, text: str | None = None) -> YamlSource:
    """Parse YAML, keeping line numbers per path; duplicate keys are errors, not overwrites.

    Bounded: files over MAX_BYTES, nesting past MAX_DEPTH and alias expansion past MAX_NODES
    are refused with a message, in time and memory proportional to the file.
    """
    file = str(path)
    if text is None:
        text = _read(path)
    elif len(text) > MAX_BYTES:
        raise SourceError([SourceIssue(file, None, "", _too_big())])
    try:
        try:
            node, loader = _compose(text, _LOADER)
        except yaml.YAMLError as exc:
            problem = str(getattr(exc, "problem", ""))
            if (
                _LOADER is _BoundedSafeLoader
                or isinstance(exc, _BoundsError)
                or "maximum nesting depth" in problem  # libyaml's own bound (1,000 levels)
                or len(text) > MAX_FALLBACK_BYTES
            ):
                raise
            # Say what is wrong in the pure-Python parser's words, as always.
            node, loader = _compose(text, _BoundedSafeLoader)
    except yaml.YAMLError as exc:
        raise SourceError([_yaml_issue(file, exc, text)]) from exc
    except (RecursionError, MemoryError) as exc:  # bounded above; a last line of defence
        issue = SourceIssue(file, None, "", f"cannot parse: {type(exc).__name__}")
        raise SourceError([issue]) from exc
    if node is None:
        loader.dispose()
        return YamlSource(file, None, {})
    lines: dict[PathKey, int] = {}
    issues: list[SourceIssue] = []
    try:
        # Walked before constructing: merge keys (<<) rewrite the graph as they are applied.
        _walk(node, (), lines, issues, file)
        if issues:
            raise SourceError(issues)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise SourceError([_yaml_issue(file, exc, text)]) from exc
    finally:
        loader.dispose()
    return YamlSource(file, data, lines)


def _yaml_issue(file: str, exc: yaml.YAMLError, text: str) -> SourceIssue:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    opened = _left_open(exc, text, mark)
    if opened is None or mark is None:
        return SourceIssue(file, line, "", f"invalid YAML: {problem}")
    lines = text.splitlines()
    source_line = lines[opened.line] if opened.line < len(lines) else ""
    opener = source_line[opened.column : opened.column + 1] or "?"
    return SourceIssue(
        file,
        opened.line + 1,
        "",
        f"invalid YAML: {opener!r} opened here (column {opened.column + 1}) is not closed: "
        f"{problem} at line {mark.line + 1}, column {mark.column + 1}",
    )


def _left_open(exc: yaml.YAMLError, text: str, problem: Any) -> Any:
    """Where the quote or bracket that the error happened inside was opened, or None.

    The parser notices a construct left open only where it gives up (often the end of the
    file); the place to look is where it began. A quote is the scanner's context; a bracket
    is the innermost one still open at the problem (the file is scanned again for it, within
    the size the pure-Python parser is trusted with)."""
    if not isinstance(exc, yaml.parser.ParserError | yaml.scanner.ScannerError):
        return None  # a bound or a composer error: not about brackets
    context = str(getattr(exc, "context", None) or "")
    if context.endswith("quoted scalar"):
        return getattr(exc, "context_mark", None)
    if problem is None or len(text) > MAX_FALLBACK_BYTES:
        return None
    stack: list[Any] = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if (token.start_mark.line, token.start_mark.column) >= (problem.line, problem.column):
                break
            if isinstance(token, yaml.FlowMappingStartToken | yaml.FlowSequenceStartToken):
                stack.append(token.start_mark)
            elif isinstance(token, yaml.FlowMappingEndToken | yaml.FlowSequenceEndToken) and stack:
                stack.pop()
    except yaml.YAMLError:
        pass  # the scanner's own error lies at or past the problem: the stack is complete
    return stack[-1] if stack else None


def _walk(
    node: yaml.Node,
    path: PathKey,
    lines: dict[PathKey, int],
    issues: list[SourceIssue],
    file: str,
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                issues.append(
                    SourceIssue(
                        file,
                        key_node.start_mark.line + 1,
                        dotted((*path, key)),
                        "duplicate key; each key may appear once",
                    )
                )
            seen.add(key)
            _walk(value_node, (*path, key), lines, issues, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, issues, file)
