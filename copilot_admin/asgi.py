import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
django_application = get_asgi_application()

# The copilot call's bearer-token POSTs take a lean route with the API's middleware only; every
# other request goes to `django_application` (copilot_admin/copilot/lean_asgi.py).
from copilot_admin.copilot.lean_asgi import LeanCallRouter  # noqa: E402  (after Django is set up)

application = LeanCallRouter(django_application)
