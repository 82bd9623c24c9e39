"""Walk every page route of the project as one user and read what a person sees on it.

Used by tests/admin_experience/test_words.py (issue 14, "words people understand"). The routes come
from the policy table (tests/cross/routes.py), so a new page is walked as soon as it is tabled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from types import SimpleNamespace

from django.urls import reverse

from copilot_admin.access.models import SecurityRole
from copilot_admin.copilot.features import FEATURES
from tenants.models import ClientCompany, Membership, Tenant
from tests.cross.routes import GLOBAL_ROUTES, OBJECT_KIND, OPERATOR, TENANT_PAGES, holds, object_pk

# Text inside these elements is shown as written on purpose (codes, payloads, typed text).
_VERBATIM = {"code", "pre", "kbd", "samp", "textarea", "script", "style", "template"}
# Operator pages of the console that take a pk, and which object they name.
_OPERATOR_OBJECT = {
    "platform:tenant_edit": "tenant", "platform:tenant_suspend": "tenant", "platform:tenant_overview": "tenant",
    "platform:deployment_edit": "deployment", "platform:deployment_deactivate": "deployment",
}
# Global pages that are not walked: the start page (a redirect), logging out, downloads, the API and links that need a token.
_NOT_PAGES = {"home", "logout", "schema", "api-docs", "platform_audit:export", "password_reset_confirm", "invitation_accept",
              "sso_login_start", "sso_login_callback", "mfa:login_verify", "mfa:login_key_options",
              "mfa:login_key_verify", "mfa:key_options", "mfa:key_register", "mfa:remove", "mfa:recovery_codes",
              "mfa:totp_enrol", "platform:tenant_admin_invite", "platform:tenant_invitation_resend",
              "platform:abuse_case_reinstate", "platform:sso_domain_decide", "copilot-simulator"}


class _Text(HTMLParser):
    """The visible text of a page: text nodes outside verbatim elements, one line per block."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.depth = 0  # inside a verbatim element

    def handle_starttag(self, tag, attrs):
        if tag in _VERBATIM:
            self.depth += 1
        self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _VERBATIM and self.depth:
            self.depth -= 1
        self.parts.append("\n")

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "\n".join(" ".join(line.split()) for line in "".join(parser.parts).splitlines() if line.strip())


@dataclass(frozen=True)
class Leak:
    path: str
    word: str
    line: str

    def __str__(self):
        return f"{self.path}: {self.word!r} in {self.line!r}"


def _rules() -> list[tuple[re.Pattern, str]]:
    """(pattern, what it catches). Codes and slugs belong in <code>, not in sentences and labels."""
    slugs = [slug for slug, feature in FEATURES.items() if slug != feature.label.lower()]
    return [
        (re.compile(r"(?<![\w.@/-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w@/-])"), "a snake_case code"),
        (re.compile(r"(?<![\w.@/-])(?:" + "|".join(map(re.escape, slugs)) + r")(?![\w@/-])"), "a feature slug"),
        (re.compile(r"(?<![\w.@/-])copilot\.[a-z-]+"), "a permission code"),
        (re.compile(r"\b[Ee]mail\b"), "'Email' (the pages say 'E-mail')"),
        (re.compile(r"\bApi\b"), "'Api' (the pages say 'API')"),
        (re.compile(r"\bAuth\b"), "'Auth' (the pages say 'Authentication')"),
    ]


def leaks(path: str, html: str) -> list[Leak]:
    found = []
    for line in visible_text(html).splitlines():
        for pattern, _ in _rules():
            found += [Leak(path, match.group(0), line) for match in pattern.finditer(line)]
    return found


def demo_world(slug: str) -> SimpleNamespace:
    """The seeded tenant `slug` as the policy table's helpers expect it (tenant, members)."""
    tenant = Tenant.objects.get(slug=slug)
    members = {m.user.email.split("@")[0]: m for m in Membership.objects.for_tenant(tenant).select_related("user")}
    roles = SecurityRole.objects.for_tenant(tenant)
    # A role of the tenant's own that no one holds: its delete and deactivate pages answer.
    role = roles.filter(name="Night shift").first() or roles.create(
        tenant=tenant, name="Night shift", user_type="internal", permissions=["copilot.time_entry"])
    return SimpleNamespace(tenant=tenant, members=members, role=role)


def tenant_page_urls(world, member, only=None) -> list[str]:
    """The URL of every tenant page `member` may GET (of the route names `only`, when given),
    objects taken from `world`."""
    urls = []
    for name, permission in sorted(TENANT_PAGES.items()):
        if not holds(member, permission) or (only is not None and name not in only):
            continue
        kwargs = {"tenant_slug": world.tenant.slug}
        kind = OBJECT_KIND.get(name)
        if kind == "membership":
            kwargs["pk"] = world.members["tech"].pk
        elif kind == "company":
            kwargs["pk"] = ClientCompany.objects.for_tenant(world.tenant).order_by("pk").first().pk
        elif kind == "role":
            kwargs["pk"] = world.role.pk
        elif kind:
            kwargs["pk"] = object_pk(kind, world)
        urls.append(reverse(name, kwargs=kwargs))
    return urls


def operator_page_urls() -> list[str]:
    from copilot_admin.regions.models import AzureDeployment

    urls = []
    for name, who in sorted(GLOBAL_ROUTES.items()):
        if name.startswith("api:") or name in _NOT_PAGES or who not in (OPERATOR, "authenticated"):
            continue
        kind = _OPERATOR_OBJECT.get(name)
        if kind == "tenant":
            urls.append(reverse(name, kwargs={"pk": Tenant.objects.get(slug="northwind").pk}))
        elif kind == "deployment":
            deployment = AzureDeployment.objects.order_by("pk").first()
            if deployment is not None:
                urls.append(reverse(name, kwargs={"pk": deployment.pk}))
        else:
            urls.append(reverse(name))
    return urls


def walk(client, urls) -> tuple[dict[str, int], list[Leak]]:
    """GET each URL: its status, and the leaks of every page that answered 200."""
    statuses, found = {}, []
    for url in urls:
        response = client.get(url)
        statuses[url] = response.status_code
        if response.status_code == 200 and "text/html" in response.get("Content-Type", ""):
            found += leaks(url, response.content.decode())
    return statuses, found
