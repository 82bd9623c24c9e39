"""Security roles API: list, read, create (or clone), edit, deactivate, delete."""

from django.db.models import Count
from rest_framework import mixins

from copilot_admin.access import services
from copilot_admin.access.base_api import TenantViewSet
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm
from copilot_admin.access.serializers import RoleSerializer
from copilot_admin.core.errors import ApplicationError


class RoleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                  mixins.UpdateModelMixin, mixins.DestroyModelMixin, TenantViewSet):
    model = SecurityRole
    serializer_class = RoleSerializer
    permissions = {
        "list": Perm.ROLES, "retrieve": Perm.ROLES, "create": Perm.ROLES,
        "update": Perm.ROLES, "partial_update": Perm.ROLES, "destroy": Perm.ROLES,
    }
    # Auditors read the roles and their permissions (read-only).
    alternatives = {"list": Perm.DIRECTORY_VIEW, "retrieve": Perm.DIRECTORY_VIEW}
    filterset_fields = ["user_type", "is_system", "is_active"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def narrow_queryset(self, queryset):
        return queryset.annotate(user_count=Count("memberships")).order_by("-is_system", "name")

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        clone_from = data.pop("clone_from", None)
        if clone_from is not None:
            source = SecurityRole.objects.for_tenant(self.tenant).filter(pk=clone_from).first()
            if source is None:
                raise ApplicationError("Unknown role to clone.", fields={"clone_from": ["not found"]})
            data.pop("user_type", None)
            serializer.instance = services.role_clone(actor=self.membership, source=source, **data)
        else:
            serializer.instance = services.role_create(
                actor=self.membership,
                name=data["name"],
                user_type=data["user_type"],
                permissions=data.get("permissions", []),
                description=data.get("description", ""),
                is_active=data.get("is_active", True),
            )

    def perform_update(self, serializer):
        changes = dict(serializer.validated_data)
        changes.pop("clone_from", None)
        serializer.instance = services.role_update(actor=self.membership, role=serializer.instance, **changes)

    def perform_destroy(self, instance):
        services.role_delete(actor=self.membership, role=instance)
