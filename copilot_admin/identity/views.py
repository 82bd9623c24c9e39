"""The `integration-keys/` page: list, create (the secret shown once, on the answer to the
create, never stored in a session or message), revoke."""

from django.contrib import messages
from django.shortcuts import redirect
from django.utils.cache import add_never_cache_headers

from copilot_admin.access.base_views import TenantListView
from copilot_admin.access.permissions import Perm
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import form_add_service_error, posted_id
from copilot_admin.identity import services
from copilot_admin.identity.forms import IntegrationKeyForm
from copilot_admin.identity.models import IntegrationKey


class IntegrationKeyListView(TenantListView):
    permission_required = Perm.INTEGRATIONS
    model = IntegrationKey
    template_name = "identity/integration_key_list.html"

    def narrow_queryset(self, queryset):
        return queryset.select_related("created_by").order_by("-created_at", "-id")

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", IntegrationKeyForm())
        return super().get_context_data(**kwargs)

    def post(self, request, *args, **kwargs):
        if request.POST.get("action") == "revoke":
            return self._revoke(request)
        form = IntegrationKeyForm(request.POST)
        secret = None
        if form.is_valid():
            try:
                key, secret = services.integration_key_create(actor=self.membership, **form.cleaned_data)
            except ApplicationError as error:
                form_add_service_error(form, error)
            else:
                messages.success(request, f"The key {key.name} was created. Copy it now: it is not shown again.")
                form = IntegrationKeyForm()
        self.object_list = self.get_queryset()
        response = self.render_to_response(self.get_context_data(form=form, new_secret=secret))
        add_never_cache_headers(response)
        return response

    def _revoke(self, request):
        pk = posted_id(request.POST.get("key"))
        key = self.get_queryset().filter(pk=pk).first() if pk is not None else None
        if key is None:
            messages.error(request, "No such key.")
        else:
            services.integration_key_revoke(actor=self.membership, key=key)
            messages.success(request, f"The key {key.name} was revoked.")
        return redirect("identity:integration_keys", tenant_slug=self.tenant.slug)
