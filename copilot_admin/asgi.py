import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
django_application = get_asgi_application()

# After Django is set up:
from django.urls import get_resolver

# The copilot call's bearer-token POSTs take a lean route with the API's middleware only; every
# other request goes to `django_application` (copilot_admin/copilot/lean_asgi.py).
from copilot_admin.copilot.lean_asgi import LeanCallRouter
from copilot_admin.core.runtime import gc_tune

application = LeanCallRouter(django_application)

# Load the URLconf (and the views) now rather than on the first request, then freeze everything
# a worker keeps out of garbage collection (core/runtime.py).
get_resolver().url_patterns  # noqa: B018
gc_tune()
