"""The API's body parsers: DRF's, with a bound on nesting and refusing unstorable text.

- A JSON body nested deeper than JSON_MAX_DEPTH (arrays and objects) is refused with 400
  `too_deep` before any view, serializer or service walks it; a body so deep that the decoder
  itself runs out of stack (RecursionError) is refused the same way instead of crashing.
- A string (a key or a value, at any depth) holding a NUL character or a lone UTF-16 surrogate
  (`"\\ud800"`) is refused with 400 `invalid` before any serializer, service or database sees
  it: PostgreSQL refuses NUL in text, UTF-8 cannot encode a lone surrogate, and an error message
  echoing such a value could not be rendered. `fields` names where it was found.
"""

import re

from rest_framework import exceptions, parsers

JSON_MAX_DEPTH = 64


class JSONTooDeep(exceptions.ParseError):
    """400 `too_deep` (the API error handler names the code)."""

    default_detail = f"The JSON body is nested deeper than {JSON_MAX_DEPTH} levels."
    default_code = "too_deep"


def json_depth_exceeds(value, limit: int) -> bool:
    """Whether `value` nests arrays/objects more than `limit` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class DepthLimitedJSONParser(parsers.JSONParser):
    """The copilot call's JSON parser (its payload validation names unstorable text itself)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise JSONTooDeep() from None
        if json_depth_exceeds(data, JSON_MAX_DEPTH):
            raise JSONTooDeep()
        return data


UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MESSAGE = "Text must not contain NUL characters or unpaired surrogates."


def unstorable_text_at(data) -> str | None:
    """The dotted path of the first string holding NUL or a lone surrogate in parsed data
    (dicts, lists, query dicts), `""` for the top level, None when there is none. Iterative:
    the depth of the data never costs stack."""
    stack = [("", data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if UNSTORABLE.search(node):
                return path
            continue
        if hasattr(node, "lists"):  # QueryDict: every value of every key
            items = [(key, values) for key, values in node.lists()]
        elif isinstance(node, dict):
            items = list(node.items())
        elif isinstance(node, (list, tuple)):
            items = list(enumerate(node))
        else:
            continue
        for key, value in items:
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and UNSTORABLE.search(key):
                return path or "non_field_errors"
            stack.append((child, value))
    return None


def refuse_unstorable_text(data):
    """`data`, or a 400 `invalid` naming the field that holds NUL or a lone surrogate."""
    path = unstorable_text_at(data)
    if path is not None:
        raise exceptions.ValidationError({path.split(".")[0] or "non_field_errors": [MESSAGE]})
    return data


class APIJSONParser(DepthLimitedJSONParser):
    """REST_FRAMEWORK's default JSON parser: bounded nesting, storable text."""

    def parse(self, stream, media_type=None, parser_context=None):
        return refuse_unstorable_text(super().parse(stream, media_type, parser_context))
