"""Request-wide middleware: the audit actor of browser requests, and no caching of answers."""

from auditlog.context import set_actor

from copilot_admin.core.client_ip import client_ip


class AuditActorMiddleware:
    """Session requests: set the django-auditlog actor and client address for the request.

    API requests authenticate later (inside DRF); the API base classes set the actor there.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user if request.user.is_authenticated else None
        with set_actor(actor=user, remote_addr=client_ip(request)):
            return self.get_response(request)


