"""Tenancy: tenants and their plans, client companies, users and memberships."""

from importlib import import_module

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.utils import timezone

from copilot_admin.core.timezones import validate_time_zone
from tenants.scoping import TenantOwned, TenantScopedManager


class Plan(models.TextChoices):
    ESSENTIALS = "essentials", "Essentials"
    ITSM = "itsm", "ITSM"
    ITSM_COPILOT = "itsm_copilot", "ITSM + Copilot"
    OPS = "ops", "Ops"
    ULTIMATE = "ultimate", "Ultimate"


# Copilot is entitled by plan, for every user of the tenant or for none.
PLANS_WITH_COPILOT = frozenset({Plan.OPS, Plan.ULTIMATE, Plan.ITSM_COPILOT})


class TenantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class UserType(models.TextChoices):
    INTERNAL = "internal", "Internal"
    CO_MANAGED = "co_managed", "Co-managed"


class Tenant(models.Model):
    """An MSP using the copilot. Its data zone decides where copilot calls are processed."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=50, unique=True)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.ITSM)
    zone = models.ForeignKey("regions.DataZone", on_delete=models.PROTECT, related_name="tenants")
    status = models.CharField(max_length=12, choices=TenantStatus.choices, default=TenantStatus.ACTIVE)
    copilot_enabled = models.BooleanField(default=False)
    # {feature value: bool}; a feature missing from the map is off.
    feature_switches = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == TenantStatus.ACTIVE

    @property
    def plan_includes_copilot(self) -> bool:
        return self.plan in PLANS_WITH_COPILOT

    def feature_enabled(self, feature: str) -> bool:
        return bool(self.feature_switches.get(feature, False))


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password) if password else user.set_unusable_password()
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, email: str) -> "User":
        """E-mail addresses are stored lower-cased; logins match them case-insensitively."""
        return self.get(email=(email or "").strip().lower())

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("is_platform_operator", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser):
    """A person who logs in with an e-mail address. Tenant access comes from memberships."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_platform_operator = models.BooleanField(
        default=False, help_text="Vendor personnel: manages tenants, deployments and default limits."
    )
    date_joined = models.DateTimeField(default=timezone.now, editable=False)
    # Pages show this user times in this zone; stored times, the API and exports stay UTC.
    time_zone = models.CharField(
        max_length=64, blank=True, default="", validators=[validate_time_zone],
        help_text="IANA time zone name pages show times in (blank: UTC).",
    )

    objects = UserManager()

    # Never in the audit log: the password hash, and the login time (its own events say that).
    AUDIT_EXCLUDED_FIELDS = ("password", "last_login")

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.full_name or self.email

    def clean(self) -> None:
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()


class ClientCompany(TenantOwned):
    """A customer organization of the MSP. Co-management is enabled per company.

    A deactivated company (`is_active` off) stays with its history (usage records, audit) but
    is out of everyone's copilot scope: a call for one of its tickets is refused
    (`company_inactive`), for internal and co-managed users alike."""

    name = models.CharField(max_length=150)
    co_managed = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)

    class Meta(TenantOwned.Meta):
        ordering = ["name"]
        verbose_name_plural = "client companies"
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="company_unique_name_per_tenant")]

    def __str__(self) -> str:
        return self.name


class MembershipQuerySet(models.QuerySet):
    def granting_access(self) -> "MembershipQuerySet":
        """Memberships that let their user into the tenant: accepted by the account's owner
        and active. Every access path (pages, API, copilot call, tenant switcher, security
        events, login security) reads memberships through this."""
        return self.filter(accepted_at__isnull=False, is_active=True)

    def pending(self) -> "MembershipQuerySet":
        return self.filter(accepted_at__isnull=True)


class MembershipManager(TenantScopedManager.from_queryset(MembershipQuerySet)):
    pass


class Membership(TenantOwned):
    """A user in a tenant: its type, its one security role, and for co-managed users the
    client companies it co-manages.

    A membership starts as an invitation (`accepted_at` empty) that grants nothing until the
    account's owner accepts it, signed in as themselves (or, for an account the invitation
    created, by setting its password). `access_revoked_at` is set when the membership is
    deactivated: credentials (sessions, API tokens) issued before it never reach this tenant
    again, also after a re-activation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    user_type = models.CharField(max_length=12, choices=UserType.choices, default=UserType.INTERNAL)
    role = models.ForeignKey("access.SecurityRole", on_delete=models.PROTECT, related_name="memberships")
    companies = models.ManyToManyField(ClientCompany, blank=True, related_name="co_managers")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The invitation created the account: setting the account's first password accepts it.
    created_account = models.BooleanField(default=False, editable=False)
    access_revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = MembershipManager()

    # Whether an invited address had an account is not the inviting tenant's to read: neither
    # `created_account` nor the account's id (its age) is recorded; an entry names the
    # membership by its user's e-mail (its repr), and a membership's user never changes.
    AUDIT_EXCLUDED_FIELDS = ("created_account", "user")

    class Meta(TenantOwned.Meta):
        ordering = ["user__email"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user_per_tenant")]

    def __str__(self) -> str:
        return self.user.email

    @property
    def is_co_managed(self) -> bool:
        return self.user_type == UserType.CO_MANAGED

    @property
    def is_accepted(self) -> bool:
        return self.accepted_at is not None

    @property
    def member_name(self) -> str:
        """The account's name as the tenant sees it: only once its owner accepted (an
        invitation reveals nothing about an existing account)."""
        return self.user.full_name if self.is_accepted else ""

    @property
    def grants_access(self) -> bool:
        return self.is_accepted and self.is_active

    def credential_refused(self, issued_at) -> bool:
        """A credential issued before the membership was last deactivated never reaches
        this tenant (`issued_at` None: no credential, a server-side caller)."""
        return issued_at is not None and self.access_revoked_at is not None and issued_at < self.access_revoked_at


class UserSession(AbstractBaseSession):
    """A login session, with its user so that suspending a tenant can end its users' sessions."""

    user_id = models.BigIntegerField(null=True, db_index=True)

    @classmethod
    def get_session_store_class(cls):
        # The configured engine (tenants.sessions), looked up by name: the engine imports this model.
        return import_module(settings.SESSION_ENGINE).SessionStore
