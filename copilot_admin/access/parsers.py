"""The API's JSON parser: DRF's, with a bound on nesting.

A body nested deeper than JSON_MAX_DEPTH (arrays and objects) is refused with 400 `too_deep`
before any view, serializer or service walks it; a body so deep that the decoder itself runs
out of stack (RecursionError) is refused the same way instead of crashing with a 500.
"""

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
    """REST_FRAMEWORK's default JSON parser (and the copilot call's)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise JSONTooDeep() from None
        if json_depth_exceeds(data, JSON_MAX_DEPTH):
            raise JSONTooDeep()
        return data
