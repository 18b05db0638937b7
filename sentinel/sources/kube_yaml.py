"""YAML that cannot blow up: documents are composed first (libyaml when present), the
node graph is measured with aliases counted as what they would expand to (a
billion-laughs document is a few hundred bytes of anchors that expand exponentially),
and only documents under the limit are constructed into Python objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAX_EXPANDED_NODES = 1_000_000
MAX_DOCUMENTS = 100_000


class YamlRefused(ValueError):
    pass


def _loader_class() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def expanded_size(root: Any, limit: int) -> int:
    """How many nodes ``root`` stands for with every alias expanded, computed once per
    distinct node (an alias is the same node object), stopping past ``limit``."""
    import yaml

    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes and not done:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += [k, v]
        if not done:
            sizes.setdefault(key, -1)  # in progress: a cycle reads as 1 below
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1
        for c in children:
            total += max(sizes.get(id(c), 1), 1)
            if total > limit:
                raise YamlRefused(f"aliases expand to more than {limit:,} nodes (a YAML bomb?)")
        sizes[key] = total
    return sizes.get(id(root), 1)


def documents(text: str | bytes, where: str) -> Iterator[tuple[int, Any]]:
    """``(index, document)`` for each document of a YAML stream, refusing bombs.
    Raises ``YamlRefused`` with a one-line reason."""
    import yaml

    loader = _loader_class()(text)
    try:
        n = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            n += 1
            if n > MAX_DOCUMENTS:
                raise YamlRefused(f"{where}: more than {MAX_DOCUMENTS:,} documents")
            try:
                expanded_size(node, MAX_EXPANDED_NODES)
            except YamlRefused as exc:
                raise YamlRefused(f"{where}: document {n}: {exc}") from None
            yield n, loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlRefused(f"{where}: not valid YAML{at}: {problem}") from None
    except RecursionError:
        raise YamlRefused(f"{where}: nested too deeply") from None
    finally:
        loader.dispose()
