"""Reads of access review campaigns."""

from django.db.models import QuerySet

from copilot_admin.compliance.models import ReviewCampaign, ReviewItem


def campaigns(*, tenant) -> QuerySet[ReviewCampaign]:
    return ReviewCampaign.objects.for_tenant(tenant).order_by("-at", "-id")


def campaign_items(*, campaign) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.for_tenant(campaign.tenant).filter(campaign=campaign).order_by("email")
