"""The auditor's experience: the log page (filters, keyset pages, entry detail with its
diff, object history), the list API, the streamed export (itself audited); an auditor
changes nothing and never sees another tenant's entries."""

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from copilot_admin.access.permissions import ADMIN_PERMISSIONS
from copilot_admin.access.policy import has_permission
from copilot_admin.audit.chain import entry_hash
from copilot_admin.audit.services import audit_event_record, audit_seal
from tests.audit.conftest import chain_fill, entries
from tests.conftest import api_client_for
from tests.cross.routes import TENANT_API, TENANT_PAGES

LIST_PAGE = "/t/alpha/audit/"
LIST_API = "/api/v1/tenants/alpha/audit/"
EXPORT_API = "/api/v1/tenants/alpha/audit/export/"
B_MARKERS = ("Bravo MSP", "@bravo.test")


@pytest.fixture
def auditor(tenant_a):
    return tenant_a.members["auditor"].user


@pytest.fixture
def auditor_client(client, auditor):
    client.force_login(auditor)
    return client


def _no_b(body: str):
    for marker in B_MARKERS:
        assert marker not in body


# -- pages ---------------------------------------------------------------------------------

def test_log_page_shows_own_tenant_entries_only(auditor_client, tenant_a, tenant_b):
    response = auditor_client.get(LIST_PAGE)
    body = response.content.decode()
    assert response.status_code == 200 and "Alpha MSP Client One" in body and "company.create" in body
    _no_b(body)


def test_sidebar_links_the_log_for_holders_of_audit_view(client, tenant_a):
    for role, shown in (("auditor", True), ("admin", True), ("tech", False)):
        client.force_login(tenant_a.members[role].user)
        body = client.get("/t/alpha/").content.decode()
        assert (f'href="{LIST_PAGE}"' in body) == shown, role


def test_entry_detail_shows_the_diff_and_links_the_objects_history(auditor_client, tenant_a, tenant_b):
    company = tenant_a.companies[0]
    api_client_for(tenant_a.members["admin"].user).patch(
        f"/api/v1/tenants/alpha/companies/{company.pk}/", {"name": "Renamed Client"}, format="json")
    entry = entries(tenant_a, action="company.update").get()
    body = auditor_client.get(LIST_PAGE, {"entry": entry.pk}).content.decode()
    assert "Alpha MSP Client One" in body and "Renamed Client" in body and entry.hash in body
    history = f"?object_type=company&amp;object_id={company.pk}"
    assert history in body
    listed = auditor_client.get(LIST_PAGE, {"object_type": "company", "object_id": company.pk}).context["entries"]
    assert {e.object_id for e in listed} == {str(company.pk)} and len(listed) == 2  # created, renamed
    foreign = entries(tenant_b).first()
    assert auditor_client.get(LIST_PAGE, {"entry": foreign.pk}).status_code == 404
    assert auditor_client.get(LIST_PAGE, {"entry": "not-a-number"}).status_code == 404


def test_page_filters(auditor_client, tenant_a):
    audit_event_record(tenant=tenant_a.tenant, actor=tenant_a.members["tech"].user, action="copilot.call",
                       object_type="copilot.feature", object_id="summarize", outcome="denied")
    page = auditor_client.get(LIST_PAGE, {"action": "copilot", "outcome": "denied", "actor": "tech@alpha"})
    assert [e.action for e in page.context["entries"]] == ["copilot.call"]
    assert auditor_client.get(LIST_PAGE, {"since": "2999-01-01"}).context["entries"] == []
    invalid = auditor_client.get(LIST_PAGE, {"since": "yesterday"})
    assert invalid.status_code == 200 and invalid.context["entries"] == [] and "ISO 8601" in invalid.content.decode()


def test_keyset_pages_walk_the_whole_log_both_ways(auditor_client, tenant_a):
    chain_fill(tenant_a, 120)
    total = entries(tenant_a).count()
    seen, url, pages = [], LIST_PAGE, []
    while url:
        response = auditor_client.get(LIST_PAGE + url if url.startswith("?") else url)
        pages.append(response.context)
        seen += [e.pk for e in response.context["entries"]]
        url = response.context["older_url"]
    assert len(seen) == total == len(set(seen)) and seen == sorted(seen, reverse=True)
    back = auditor_client.get(LIST_PAGE + pages[2]["newer_url"]).context["entries"]
    assert [e.pk for e in back] == [e.pk for e in pages[1]["entries"]]


def test_list_page_query_count_is_independent_of_entries(auditor_client, tenant_a):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert auditor_client.get(LIST_PAGE).status_code == 200
        return len(queries)

    count()  # the first request fills the cached access decision (core/versioned_cache.py)
    few = count()
    chain_fill(tenant_a, 500)
    assert count() == few


# -- API -----------------------------------------------------------------------------------

def test_api_lists_own_tenant_with_contract_filters(tenant_a, tenant_b, auditor):
    api = api_client_for(auditor)
    response = api.get(LIST_API)
    assert response.status_code == 200 and response.json()["results"]
    _no_b(response.content.decode())
    tech = tenant_a.members["tech"].user
    audit_event_record(tenant=tenant_a.tenant, actor=tech, action="copilot.call", object_type="copilot.feature",
                       object_id="prioritize", metadata={"feature": "prioritize", "zone": "us"})
    audit_seal(tenant_id=tenant_a.tenant.pk)  # as the periodic sealer does within seconds
    found = api.get(LIST_API, {"since": "2000-01-01", "until": "2999-12-31T00:00:00Z", "actor": tech.pk,
                               "action": "copilot.call", "object_type": "copilot.feature", "q": "prioritize"}).json()
    assert [(r["action"], r["actor"], r["metadata"]["zone"]) for r in found["results"]] == [("copilot.call", tech.pk, "us")]
    entry = found["results"][0]
    assert entry["created_at"].endswith("Z") and len(entry["hash"]) == 64 and entry["outcome"] == "success"
    bad = api.get(LIST_API, {"since": "not-a-date"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid" and "since" in bad.json()["error"]["fields"]


def test_api_pages_with_a_cursor(tenant_a, auditor):
    chain_fill(tenant_a, 120)
    api, url, seen = api_client_for(auditor), LIST_API, []
    while url:
        body = api.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert len(seen) == entries(tenant_a).count() == len(set(seen))


def test_api_list_query_count_is_independent_of_entries(tenant_a, auditor):
    api = api_client_for(auditor)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert api.get(LIST_API).status_code == 200
        return len(queries)

    count()  # the first request fills the cached access decision (core/versioned_cache.py)
    few = count()
    chain_fill(tenant_a, 200)
    assert count() == few


def test_foreign_tenant_log_is_not_found(tenant_a, tenant_b, auditor):
    api = api_client_for(auditor)
    for url in ("/api/v1/tenants/bravo/audit/", "/api/v1/tenants/bravo/audit/export/?format=jsonl"):
        response = api.get(url)
        assert response.status_code == 404 and response.json() == {"error": {"code": "not_found", "message": "Not found."}}
    assert not entries(tenant_b, action="audit.export").exists()


# -- export ----------------------------------------------------------------------------------

def _body(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_csv_export_is_streamed_in_utc_with_hashes_and_is_audited(tenant_a, tenant_b, auditor):
    before = entries(tenant_a).count()
    response = api_client_for(auditor).get(EXPORT_API, {"format": "csv", "action": "company"}, REMOTE_ADDR="192.0.2.99")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-alpha-')
    body = _body(response)
    _no_b(body)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert rows and {r["action"] for r in rows} == {"company.create"}
    assert all(r["created_at_utc"].endswith("Z") and len(r["hash"]) == 64 for r in rows)
    export = entries(tenant_a, action="audit.export").get()
    assert export.seq == before + 1 and export.actor_id == auditor.pk and export.remote_addr == "192.0.2.99"
    assert export.metadata["format"] == "csv" and export.metadata["filters"] == {"action": "company"}


def test_jsonl_export_lines_carry_what_their_hash_covers(tenant_a, auditor):
    response = api_client_for(auditor).get(EXPORT_API, {"format": "jsonl"})
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in _body(response).splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    for previous, line in zip([None, *lines], lines):
        assert entry_hash(line) == line["hash"]
        assert previous is None or line["prev_hash"] == previous["hash"]


def test_csv_export_defuses_spreadsheet_formulas(tenant_a, auditor):
    api_client_for(tenant_a.members["admin"].user).post(
        "/api/v1/tenants/alpha/companies/", {"name": "=HYPERLINK(\"http://evil\")"}, format="json")
    body = _body(api_client_for(auditor).get(EXPORT_API, {"format": "csv"}))
    assert "'=HYPERLINK" in body and ",=HYPERLINK" not in body


def test_export_refuses_unknown_format_and_needs_the_export_permission(tenant_a):
    admin = api_client_for(tenant_a.members["admin"].user)
    bad = admin.get(EXPORT_API, {"format": "xlsx"})
    assert bad.status_code == 400 and bad.json()["error"]["fields"] == {"format": ["One of: csv, jsonl."]}
    refused = api_client_for(tenant_a.members["tech"].user).get(EXPORT_API, {"format": "csv"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert not entries(tenant_a, action="audit.export").exists()


def _streamed_peak(client) -> tuple[int, int, int]:
    """(bytes streamed, chunks, peak traced memory) while consuming one JSON Lines export."""
    import tracemalloc

    response = client.get(EXPORT_API, {"format": "jsonl"})
    tracemalloc.start()
    try:
        total = chunks = 0
        for chunk in response.streaming_content:
            total, chunks = total + len(chunk), chunks + 1
        return total, chunks, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_export_streams_thousands_of_entries_in_constant_memory(tenant_a, auditor, monkeypatch):
    from copilot_admin.audit import export

    monkeypatch.setattr(export, "CHUNK_ROWS", 250)
    api = api_client_for(auditor)
    chain_fill(tenant_a, 1000, repr_size=200)
    small_total, _, small_peak = _streamed_peak(api)
    chain_fill(tenant_a, 3000, repr_size=200)
    large_total, chunks, large_peak = _streamed_peak(api)
    assert large_total > 3.5 * small_total and chunks > 30
    assert large_peak < 1.5 * small_peak, f"peak {small_peak} -> {large_peak} bytes for {small_total} -> {large_total}"


# -- the auditor changes nothing ------------------------------------------------------------

def _writes_refused_to(membership):
    pages = [name for name, perm in TENANT_PAGES.items() if not has_permission(membership, perm)]
    api = [(name, method) for (name, method), perm in TENANT_API.items()
           if method != "get" and perm in ADMIN_PERMISSIONS and not has_permission(membership, perm)]
    return pages, api


def _reverse(name, world):
    try:
        return reverse(name, kwargs={"tenant_slug": world.tenant.slug})
    except Exception:  # noqa: BLE001  (an object route: the role check comes before the lookup)
        return reverse(name, kwargs={"tenant_slug": world.tenant.slug, "pk": 999999})


def test_auditor_cannot_write_anything_and_every_attempt_is_recorded(client, tenant_a, auditor):
    membership = tenant_a.members["auditor"]
    pages, api_routes = _writes_refused_to(membership)
    assert pages and api_routes
    client.force_login(auditor)
    changes_before = entries(tenant_a).exclude(action="access.denied").count()
    api = api_client_for(auditor)
    for name in pages:
        response = client.post(_reverse(name, tenant_a), {"name": "x", "is_active": ""})
        assert response.status_code == 403, name
    for name, method in api_routes:
        response = getattr(api, method)(_reverse(name, tenant_a), {"name": "x", "is_active": False}, format="json")
        assert response.status_code == 403, (name, method)
    assert entries(tenant_a).exclude(action="access.denied").count() == changes_before
    denied = entries(tenant_a, action="access.denied", actor_id=auditor.pk)
    assert denied.count() == len(pages) + len(api_routes)
    assert {e.metadata["method"] for e in denied} >= {"POST"} and all(e.outcome == "denied" for e in denied)


def test_forged_cursor_is_not_found_not_a_server_error(tenant_a, auditor):
    import base64

    forged = base64.b64encode(b"p=abc&r=0").decode()
    response = api_client_for(auditor).get(LIST_API, {"cursor": forged})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api_client_for(auditor).get(LIST_API, {"q": "nul\x00byte"}).status_code == 400
