"""Tenancy tasks: each loads by id and calls one service or sends one message."""

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from tenants.models import Tenant, User


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=8, acks_late=True)
def send_invitation(*, user_id: int, tenant_id: int) -> None:
    """E-mail a new user the link to set a password. Sends nothing once the password is set."""
    from tenants.services import invitation_link_parts

    user = User.objects.filter(pk=user_id, is_active=True).first()
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if user is None or tenant is None or user.has_usable_password():
        return
    uid, token = invitation_link_parts(user=user)
    context = {
        "user": user,
        "tenant": tenant,
        "link": settings.SITE_URL.rstrip("/") + reverse("password_reset_confirm", args=[uid, token]),
    }
    send_mail(
        subject=f"You are invited to {tenant.name} on copilot-admin",
        message=render_to_string("emails/invitation.txt", context),
        html_message=render_to_string("emails/invitation.html", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
