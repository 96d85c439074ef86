"""Admin YAML files: parse, validate with pydantic, and report errors as file:line."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """1-based line of the YAML node at ``loc`` (the deepest existing parent otherwise)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == str(part)),
                         None)
            key = next((k for k, _v in node.value if getattr(k, "value", None) == str(part)),
                       None)
            if match is None:
                return line
            node, line = match, (key.start_mark.line + 1 if key is not None else line)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read ``path`` and validate it as ``model``; every problem reported as file:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from exc
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{path}:{line}: YAML inválido: {getattr(exc, 'problem', exc)}") from exc
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        lines = [
            f"{path}:{_line_of(node, tuple(err['loc']))}: "
            f"{'.'.join(str(p) for p in err['loc']) or '(raíz)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from exc


@lru_cache(maxsize=32)
def _cached(path: Path, _mtime: float, model: type[BaseModel]) -> BaseModel:
    return load_yaml_model(path, model)


def load_yaml_model_cached(path: Path, model: type[M]) -> M:
    """``load_yaml_model``, read again only when the file changes (its mtime)."""
    found = _cached(path, path.stat().st_mtime if path.exists() else 0.0, model)
    assert isinstance(found, model)
    return found
