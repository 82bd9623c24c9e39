"""Access review campaigns: an auditor starts one, the tenant administrator confirms or flags
each member's access as the review captured it, a flag comes with the change it calls for, and
the finished review (who decided what, when) is kept and exportable."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


class CampaignStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"


class Decision(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    FLAGGED = "flagged", "Flagged (changed)"


class ReviewCampaign(TenantOwned):
    """One access review of a tenant, of its members' access at `at` (when it started)."""

    name = models.CharField(max_length=120)
    at = models.DateTimeField(default=timezone.now, help_text="The moment whose access is reviewed (UTC).")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=12, choices=CampaignStatus.choices, default=CampaignStatus.OPEN)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(TenantOwned.Meta):
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return self.name


class ReviewItem(TenantOwned):
    """One member's access as the campaign captured it, and the administrator's decision."""

    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.CASCADE, related_name="items")
    membership = models.ForeignKey("tenants.Membership", null=True, on_delete=models.SET_NULL, related_name="+")
    email = models.CharField(max_length=254)
    user_type = models.CharField(max_length=12)
    role = models.CharField(max_length=120)
    permissions = models.JSONField(default=list)
    companies = models.JSONField(default=list)
    is_active = models.BooleanField()
    copilot_access = models.CharField(max_length=12)
    decision = models.CharField(max_length=12, choices=Decision.choices, default=Decision.PENDING)
    change = models.CharField(max_length=255, blank=True, help_text="What a flag changed.")
    note = models.CharField(max_length=255, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_email = models.CharField(max_length=254, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["email"]

    def __str__(self) -> str:
        return f"{self.email} in {self.campaign_id}"
