"""Project-level contract: demo seed, production settings, API schema and docs offline, error shape."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tenants.models import ClientCompany, Membership, Tenant, User

ROOT = Path(__file__).resolve().parents[1]


def test_seed_demo_is_idempotent_and_matches_the_contract(db):
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    counts = (User.objects.count(), Tenant.objects.count(), Membership.unscoped_objects.count(), ClientCompany.unscoped_objects.count())
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    assert counts == (User.objects.count(), Tenant.objects.count(), Membership.unscoped_objects.count(), ClientCompany.unscoped_objects.count())
    assert User.objects.get(email="operator@platform.example").is_platform_operator
    expected = {"northwind": ("us", "ultimate", True), "contoso": ("eu", "itsm_copilot", True), "fabrikam": ("us", "itsm", False)}
    for slug, (zone, plan, entitled) in expected.items():
        tenant = Tenant.objects.get(slug=slug)
        assert (tenant.zone.code, tenant.plan, tenant.plan_includes_copilot) == (zone, plan, entitled)
        assert ClientCompany.objects.for_tenant(tenant).count() >= 2
        roles = {m.user.email: m.role.name for m in Membership.objects.for_tenant(tenant).select_related("user", "role")}
        assert roles == {
            f"admin@{slug}.example": "Tenant Administrator", f"tech@{slug}.example": "Technician",
            f"comanaged@{slug}.example": "Co-managed Help Desk", f"auditor@{slug}.example": "Compliance Auditor",
        }
        comanaged = Membership.objects.for_tenant(tenant).get(user__email=f"comanaged@{slug}.example")
        assert comanaged.companies.count() == 1 and comanaged.companies.get().co_managed
    assert User.objects.get(email="admin@northwind.example").check_password("copilot-demo")


def _manage(*args, env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _production_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update({"DJANGO_ENV": "production", "DJANGO_SECRET_KEY": "x" * 60 + "-production-test-key",
                "DJANGO_ALLOWED_HOSTS": "copilot.example.com",
                "AUDIT_CHECKPOINT_KEY": "k" * 40, "AUDIT_CHECKPOINT_KEY_ID": "test-2026"}, **extra)
    return env


def test_check_deploy_passes_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("env_change,message", [
    ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY must be set"),
    ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must be off"),
    ({"WEBHOOK_ALLOW_HTTP_LOOPBACK": "true"}, "WEBHOOK_ALLOW_HTTP_LOOPBACK must be off"),
    ({"AUDIT_CHECKPOINT_KEY": ""}, "AUDIT_CHECKPOINT_KEY (at least 32 characters)"),
    ({"AUDIT_CHECKPOINT_KEY": "short"}, "AUDIT_CHECKPOINT_KEY (at least 32 characters)"),
    ({"AUDIT_CHECKPOINT_KEY_ID": ""}, "AUDIT_CHECKPOINT_KEY_ID must be set"),
])
def test_production_refuses_unsafe_settings(env_change, message):
    result = _manage("check", env=_production_env(**env_change))
    assert result.returncode != 0 and message in result.stderr


def test_production_webhooks_take_only_https_to_public_addresses_by_default():
    env = {k: v for k, v in _production_env().items() if not k.startswith("WEBHOOK_")}
    result = _manage("shell", "-c", "from django.conf import settings; print(settings.WEBHOOK_ALLOW_HTTP_LOOPBACK)",
                     env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("False")


def test_malformed_environment_value_is_named():
    env = {**os.environ, "EMAIL_PORT": "twenty-five"}
    result = _manage("check", env=env)
    assert result.returncode != 0 and "EMAIL_PORT must be an integer" in result.stderr


def test_schema_and_offline_docs(db):
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ["/api/v1/auth/token/", "/api/v1/tenants/{tenant_slug}/users/", "/api/v1/tenants/{tenant_slug}/roles/",
                 "/api/v1/tenants/{tenant_slug}/companies/", "/api/v1/tenants/{tenant_slug}/settings/",
                 "/api/v1/platform/tenants/"]:
        assert path in paths
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower() and "//unpkg" not in docs
    assert "/static/drf_spectacular_sidecar/" in docs


def test_schema_generation_has_no_warnings():
    result = _manage("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull, env=dict(os.environ))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("method,path,body,status,code", [
    ("put", "/api/v1/tenants/alpha/users/1/", {}, 405, "method_not_allowed"),
    ("get", "/api/v1/tenants/alpha/users/", None, 401, "not_authenticated"),
])
def test_errors_have_the_contract_shape(db, method, path, body, status, code):
    response = getattr(APIClient(), method)(path, body, format="json")
    assert response.status_code in (status, 401)
    assert set(response.json()) == {"error"} and set(response.json()["error"]) >= {"code", "message"}


def test_malformed_json_is_a_400_in_contract_shape(tenant_a):
    from tests.conftest import api_client_for

    api = api_client_for(tenant_a.members["admin"].user)
    response = api.post("/api/v1/tenants/alpha/companies/", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"
    response = api.put("/api/v1/tenants/alpha/users/1/", {}, format="json")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
