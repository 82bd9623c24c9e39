"""Fixtures of the access tests."""

import pytest

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm
from tests.factories import add_member


@pytest.fixture
def user_admin(tenant_a):
    """An administrator who may manage users and roles but holds no audit permissions."""
    role = SecurityRole.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, name="User Admin", user_type="internal",
        permissions=[Perm.USERS, Perm.ROLES, "copilot.summarize"],
    )
    return add_member(tenant_a.tenant, role.name, email="useradmin@alpha.test")
