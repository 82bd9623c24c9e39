"""Column sorting of list pages: `?sort=<key>` or `?sort=-<key>` among the keys a page declares
(anything else falls back to the default, never an error or an arbitrary field)."""

from django.http import QueryDict


def sort_param(request, sorts: dict[str, tuple[str, ...]], *, default: str) -> str:
    value = request.GET.get("sort", default)
    return value if value.lstrip("-") in sorts else default


def sort_fields(sorts: dict[str, tuple[str, ...]], sort: str) -> list[str]:
    """The ORM ordering for `sort`: every field descending when it starts with "-"."""
    descending = sort.startswith("-")
    return [f"-{name}" if descending else name for name in sorts[sort.lstrip("-")]]


def sort_columns(request, columns: dict[str, str], current: str) -> list[dict]:
    """The column headers, in order: {"key", "label", "query": the query string sorting by it
    (flipping the current one), "direction": "ascending"/"descending"/"none" (aria-sort)}."""
    links = []
    for key, label in columns.items():
        query = QueryDict(mutable=True)
        query.update({k: v for k, v in request.GET.items() if k not in ("sort", "page")})
        active = current.lstrip("-") == key
        query["sort"] = f"-{key}" if active and not current.startswith("-") else key
        direction = ("descending" if current.startswith("-") else "ascending") if active else "none"
        links.append({"key": key, "label": label, "query": query.urlencode(), "direction": direction})
    return links
