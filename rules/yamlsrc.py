"""YAML with line numbers: PyYAML's composer keeps a mark on every node, so each value an
admin wrote can be reported as ``file:line``.

``load_located`` returns plain Python data (dicts, lists, scalars) where every mapping and
sequence is a ``LMap``/``LList`` remembering its own line and the line of each key/item.
Only safe YAML is accepted (no tags that build Python objects).
"""

from __future__ import annotations

from typing import Any

import yaml


class LMap(dict[str, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int
    key_lines: dict[str, int]
    value_styles: dict[str, str | None]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def value_line(self, key: str) -> int:
        """Line where the value's text starts (block scalars start one line below the key)."""
        line = self.line_of(key)
        return line + 1 if self.value_styles.get(key) in ("|", ">") else line


class LList(list[Any]):
    """A YAML sequence that remembers the line of itself and of each item."""

    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class YamlProblem(Exception):
    """The text is not valid YAML; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


_CONSTRUCTOR = yaml.SafeLoader(stream="")  # used only to convert scalar nodes safely


def _scalar(node: yaml.ScalarNode) -> Any:
    return _CONSTRUCTOR.construct_object(node, deep=True)


def _convert(node: yaml.Node) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = LMap()
        out.line, out.key_lines, out.value_styles = line, {}, {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem(key_node.start_mark.line + 1,
                                  "una clave debe ser un texto simple")
            key = str(_scalar(key_node))
            if key in out:
                raise YamlProblem(key_node.start_mark.line + 1,
                                  f'la clave "{key}" aparece dos veces en el mismo bloque')
            out[key] = _convert(value_node)
            out.key_lines[key] = key_node.start_mark.line + 1
            out.value_styles[key] = getattr(value_node, "style", None)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = LList(_convert(item) for item in node.value)
        items.line = line
        items.item_lines = [item.start_mark.line + 1 for item in node.value]
        return items
    try:
        return _scalar(node)  # type: ignore[arg-type]
    except yaml.constructor.ConstructorError as exc:
        raise YamlProblem(line, f"valor no permitido ({exc.problem})") from exc


_YAML_MESSAGES = [
    ("expected <block end>", "la sangría no coincide con la de las líneas de arriba"),
    ("mapping values are not allowed", "hay dos puntos (:) donde no se esperaban; si es "
                                       "texto, ponlo entre comillas"),
    ("cannot start any token", "hay un carácter no permitido (¿un tabulador? usa espacios)"),
    ("could not find expected ':'", "falta \":\" después de una clave"),
    ("found unexpected end of stream", "falta cerrar unas comillas o un corchete"),
    ("expected ',' or ']'", "falta cerrar un corchete ] o una coma"),
    ("expected ',' or '}'", "falta cerrar una llave } o una coma"),
    ("found undefined alias", "alias de YAML (*) no definido"),
]


def _spanish(detail: str) -> str:
    return next((es for en, es in _YAML_MESSAGES if en in detail), detail)


def load_located(text: str) -> Any:
    """Parse one YAML document into located data; raises YamlProblem with a Spanish message."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = _spanish(exc.problem or exc.context or "texto inesperado")
        raise YamlProblem(line, f"YAML inválido: {detail} (revisa la sangría, los dos puntos "
                                "y las comillas)") from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"YAML inválido: {exc}") from exc
    if node is None:
        return None
    return _convert(node)
