"""Directory tasks: each loads by id and calls one service or sends one message."""

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from copilot_admin.directory.selectors import invitation_pending, invitation_token
from copilot_admin.directory.services import invitation_link_parts


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=8, acks_late=True)
def send_invitation(*, membership_id: int, tenant_id: int | None = None) -> None:
    """E-mail an invitation. For an account the invitation created: the link to set its
    password (setting it accepts). For an existing account: the link to the accept page
    (its owner signs in as themselves and accepts). Sends nothing once the invitation is
    accepted or gone, for an inactive account, or for a platform operator's account (which
    can never become a member of a tenant)."""
    membership = invitation_pending(membership_id=membership_id)
    if membership is None:
        return
    user, tenant = membership.user, membership.tenant
    if not user.is_active or user.is_platform_operator:
        return
    site = settings.SITE_URL.rstrip("/")
    new_account = membership.created_account and not user.has_usable_password()
    if new_account:
        uid, token = invitation_link_parts(user=user)
        link = site + reverse("password_reset_confirm", args=[uid, token])
    else:
        link = site + reverse("invitation_accept", args=[invitation_token(membership=membership)])
    context = {"user": user, "tenant": tenant, "role": membership.role, "link": link, "new_account": new_account}
    send_mail(
        subject=f"You are invited to {tenant.name} on copilot-admin",
        message=render_to_string("emails/invitation.txt", context),
        html_message=render_to_string("emails/invitation.html", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
