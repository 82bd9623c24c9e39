"""The API's body parsers: DRF's, refusing text that cannot be stored or echoed.

A string (a key or a value, at any depth) holding a NUL character or a lone UTF-16 surrogate
(`"\\ud800"`) is refused with 400 `invalid` before any serializer, service or database sees it:
PostgreSQL refuses NUL in text, UTF-8 cannot encode a lone surrogate, and an error message
echoing such a value could not be rendered. `fields` names where it was found.
"""

import re

from rest_framework import exceptions, parsers

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


class StorableTextJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return refuse_unstorable_text(super().parse(stream, media_type, parser_context))


class StorableTextFormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return refuse_unstorable_text(super().parse(stream, media_type, parser_context))


class StorableTextMultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        refuse_unstorable_text(result.data)
        return result
