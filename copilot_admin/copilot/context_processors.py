"""Template context for the layout: whether the page is a copilot page of a tenant whose plan
does not include the copilot (base.html then explains it at the top of the page)."""

# The rooms whose pages are about the copilot: its switches and playground, usage and limits.
COPILOT_PAGE_NAMESPACES = frozenset({"copilot", "usage"})


def copilot_plan(request) -> dict:
    tenant = getattr(request, "tenant", None)
    match = getattr(request, "resolver_match", None)
    if tenant is None or match is None or tenant.plan_includes_copilot:
        return {}
    if not COPILOT_PAGE_NAMESPACES & set(match.namespaces):
        return {}
    return {"copilot_not_in_plan": True}
