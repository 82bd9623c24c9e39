"""Settings for copilot-admin, read from the environment.

Every value has a development default so that `make run` works with nothing set. With
DJANGO_ENV=production the defaults that are unsafe in production are refused instead:
a missing DJANGO_SECRET_KEY or DJANGO_DEBUG on stops start-up with ImproperlyConfigured.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from copilot_admin.env import env_bool, env_int, env_ints, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

ENVIRONMENT = env_str("DJANGO_ENV", "development")
PRODUCTION = ENVIRONMENT == "production"

DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if PRODUCTION:
    if not SECRET_KEY:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_ENV=production.")
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off when DJANGO_ENV=production.")
elif not SECRET_KEY:
    # Development only: a fixed, clearly labelled key so sessions survive restarts of `make run`.
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production-0123456789"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "auditlog",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "tenants",
    "copilot_admin.access",
    "copilot_admin.directory",
    "copilot_admin.identity",
    "copilot_admin.regions",
    "copilot_admin.copilot",
    "copilot_admin.usage",
    "copilot_admin.audit",
    "copilot_admin.compliance",
    "copilot_admin.platform",
    "copilot_admin.simulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every error under /api/ in the contract's JSON shape (404s of unknown paths included).
    "copilot_admin.core.api_errors.APIErrorMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "copilot_admin.core.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A login that must enrol a second factor first reaches only the enrolment pages (identity/mfa_middleware.py).
    "copilot_admin.identity.mfa_middleware.MfaEnrolmentMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "copilot_admin.core.middleware.RequestScopeMiddleware",
    # Pages (never /api/) show times in the signed-in user's zone (core/timezones.py).
    "copilot_admin.core.middleware.UserTimeZoneMiddleware",
    "axes.middleware.AxesMiddleware",
]

# The copilot call's lean ASGI route (copilot/lean_asgi.py): bearer-token POSTs to the copilot
# feature API without a session cookie run through these, MIDDLEWARE minus the browser-only ones.
API_CALL_MIDDLEWARE = [
    path for path in MIDDLEWARE
    if path not in (
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "copilot_admin.identity.mfa_middleware.MfaEnrolmentMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "axes.middleware.AxesMiddleware",
    )
]

ROOT_URLCONF = "copilot_admin.urls"
WSGI_APPLICATION = "copilot_admin.wsgi.application"
ASGI_APPLICATION = "copilot_admin.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # TIME_ZONE: the zone the page shows times in (the user's, or UTC).
                "django.template.context_processors.tz",
                "tenants.context_processors.tenancy",
                "copilot_admin.copilot.context_processors.copilot_plan",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # PostgreSQL: a bounded pool per process (psycopg 3), not a connection per thread. Under
    # ASGI every request runs on a thread of its own, and persistent per-thread connections
    # (CONN_MAX_AGE) piled up until the server refused clients. A connection goes back to the
    # pool when its request or task ends; DATABASE_POOL_MAX_SIZE bounds what one process holds
    # (it must cover COPILOT_ORM_THREADS plus the requests served at once; more wait up to
    # DATABASE_POOL_TIMEOUT_SECONDS for a free one).
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # required with a pool
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    _pool_min = env_int("DATABASE_POOL_MIN_SIZE", 2)
    _pool_max = env_int("DATABASE_POOL_MAX_SIZE", env_int("COPILOT_ORM_THREADS", 8) + 12)
    if not 0 <= _pool_min <= _pool_max or _pool_max < 1:
        raise ImproperlyConfigured("DATABASE_POOL_MAX_SIZE must be at least 1 and DATABASE_POOL_MIN_SIZE within 0..max.")
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": _pool_min, "max_size": _pool_max, "timeout": env_int("DATABASE_POOL_TIMEOUT_SECONDS", 10),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded database of `make run`: WAL and immediate transactions let threads write
    # without "database is locked" errors.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    # Django's RedisCache, with one client and connection pool per process instead of one per
    # thread and per request (copilot_admin/core/redis_cache.py).
    CACHES = {"default": {"BACKEND": "copilot_admin.core.redis_cache.SharedRedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The copilot call's reads (token, membership, role, switches, company scope, access state,
# limits, the zone's deployments) come from the cache, versioned so that every write takes
# effect on the next call (copilot_admin/core/versioned_cache.py). 0 turns it off; it is off
# in production without Redis (a per-process cache cannot see other processes' writes).
ACCESS_CACHE_SECONDS = env_int("ACCESS_CACHE_SECONDS", 300) if (REDIS_URL or not PRODUCTION) else 0
ACCESS_CACHE_KEY_PREFIX = "copilot-admin:access:"

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "copilot_admin.directory.login_guard.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Sessions end after SESSION_IDLE_MINUTES without a request (the expiry slides on every request).
SESSION_ENGINE = "tenants.sessions"
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Failed logins (copilot_admin/directory/login_guard.py): AXES_FAILURE_LIMIT failures of one account
# from one address lock that (account, address) pair for AXES_COOLOFF_MINUTES; other addresses of
# the account and other accounts of the address are not affected.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "email"
AXES_USERNAME_CALLABLE = "copilot_admin.directory.login_guard.login_username"
AXES_CLIENT_IP_CALLABLE = "copilot_admin.core.client_ip.client_ip"
AXES_RESET_ON_SUCCESS = True
# An attempt refused while locked out checked no password: it neither counts nor renews the lockout.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "copilot_admin.directory.login_guard.lockout_response"
# An account attacked from many addresses is slowed, never locked: after
# LOGIN_THROTTLE_AFTER_FAILURES failures (all addresses) within LOGIN_THROTTLE_WINDOW_MINUTES of
# each other, each attempt waits 1 s after the last failure, doubling up to LOGIN_THROTTLE_MAX_SECONDS.
LOGIN_THROTTLE_AFTER_FAILURES = env_int("LOGIN_THROTTLE_AFTER_FAILURES", 2 * AXES_FAILURE_LIMIT)
LOGIN_THROTTLE_MAX_SECONDS = env_int("LOGIN_THROTTLE_MAX_SECONDS", 60)
LOGIN_THROTTLE_WINDOW_SECONDS = env_int("LOGIN_THROTTLE_WINDOW_MINUTES", 15) * 60
LOGIN_THROTTLE_KEY_PREFIX = "login-throttle:"
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False

# Client address: REMOTE_ADDR, unless the deployment sits behind N trusted proxies that
# append to X-Forwarded-For; then the Nth address from the right is the client's.
TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXY_COUNT", 0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_AUTOREFRESH = DEBUG
# Outside production WhiteNoise serves the files where they are (app and project static folders),
# so `make run` serves them with DEBUG off (the project's own error pages) and no collectstatic.
# Production serves the collected, hashed files from STATIC_ROOT only.
WHITENOISE_USE_FINDERS = not PRODUCTION
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Integration keys (`Bearer cak_...`) first; any other bearer credential is an API token.
        "copilot_admin.identity.authentication.IntegrationKeyAuthentication",
        "copilot_admin.access.tokens.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "copilot_admin.core.schema.ErrorAwareAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["copilot_admin.core.filters.StrictFilterBackend"],
    # The API speaks JSON (the contract): a form or multipart body is refused with 415, not read
    # leniently (a malformed multipart body would parse as "no fields" and be accepted). JSON
    # nested deeper than 64 levels is 400 too_deep; text holding NUL or a lone surrogate,
    # anywhere in a body, is 400 invalid (copilot_admin/core/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["copilot_admin.core.parsers.APIJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "copilot_admin.core.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "copilot_admin.core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_TTL": timedelta(hours=env_int("API_TOKEN_TTL_HOURS", 10)),
    "TOKEN_LIMIT_PER_USER": 20,
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "copilot-admin API",
    "DESCRIPTION": "Governance of an MSP's AI copilot: tenants, roles, access, usage and audit.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several components have a `status`; name the membership's apart from the others.
    "ENUM_NAME_OVERRIDES": {"MembershipStatusEnum": "copilot_admin.directory.serializers.MembershipStatus"},
}

# django-auditlog computes field diffs; its log entry model is our chained audit entry, and no
# model is registered with it (services record their changes themselves).
AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"
AUDITLOG_INCLUDE_ALL_MODELS = False

# Celery: with no broker configured, tasks run in-process (the `make run` default).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
# Links in e-mails: the address `make run` / the Procfile serve on unless SITE_URL says otherwise.
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}")
# How long an invitation link (accept page or first password) stays valid; each link is single-use.
INVITATION_MAX_AGE_DAYS = env_int("INVITATION_MAX_AGE_DAYS", 14)
PASSWORD_RESET_TIMEOUT = INVITATION_MAX_AGE_DAYS * 24 * 3600
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "copilot-admin <no-reply@copilot-admin.localhost>")

SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy (django-csp) on every response: scripts and styles only from our own
# static files (no inline script or style attribute anywhere; configuration travels in data-
# attributes and JSON data blocks), no framing, forms and requests only to this origin.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
    },
}
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives "django" its own console handler (when DEBUG) and lets it
        # propagate to the root's: under `make run` every django.request line was printed twice.
        # One handler, the root's (tests/platform/test_logging.py). "django.server" (runserver's
        # request lines) keeps Django's handler and does not propagate.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # HTTP client libraries log request bodies at DEBUG; ticket text must never reach a log.
        # (The openai SDK sends through httpx2 and httpcore2, the async path through aiohttp.)
        **{name: {"level": "WARNING"} for name in ("openai", "httpx", "httpcore", "httpx2", "httpcore2", "aiohttp")},
    },
}

# Tests that need a real service (PostgreSQL, Redis, chromium) fail instead of skipping when
# this is on; .ci/run turns it on.
REQUIRE_SERVICES = env_bool("REQUIRE_SERVICES", False)

# The copilot call (copilot_admin/copilot/services.py).
# Each upstream request waits at most COPILOT_UPSTREAM_TIMEOUT_SECONDS; one call, failover
# included, at most COPILOT_CALL_DEADLINE_SECONDS.
COPILOT_UPSTREAM_TIMEOUT_SECONDS = env_int("COPILOT_UPSTREAM_TIMEOUT_SECONDS", 30)
COPILOT_UPSTREAM_CONNECT_TIMEOUT_SECONDS = env_int("COPILOT_UPSTREAM_CONNECT_TIMEOUT_SECONDS", 5)
COPILOT_CALL_DEADLINE_SECONDS = env_int("COPILOT_CALL_DEADLINE_SECONDS", 60)

# Integration keys (identity/authentication.py): requests per key and minute, across all the
# key's acting members (each member's own usage limits apply as well); 0 turns the per-key
# rate off. Counted in the cache (Redis with REDIS_URL).
INTEGRATION_KEY_REQUESTS_PER_MINUTE = env_int("INTEGRATION_KEY_REQUESTS_PER_MINUTE", 600)
INTEGRATION_KEY_RATE_KEY_PREFIX = "integration-key-rate:"
# Connections each web process opens to one deployment at most (one per upstream request in
# flight): sized for 500 calls in flight per process; more wait for a free one.
COPILOT_UPSTREAM_MAX_CONNECTIONS = env_int("COPILOT_UPSTREAM_MAX_CONNECTIONS", 500)
if COPILOT_UPSTREAM_MAX_CONNECTIONS < 1:
    raise ImproperlyConfigured("COPILOT_UPSTREAM_MAX_CONNECTIONS must be at least 1.")
# Threads per process for the database work of async copilot calls (bounds their connections).
COPILOT_ORM_THREADS = env_int("COPILOT_ORM_THREADS", 8)
# The garbage collector of the long-running processes (core/runtime.py: the web workers and the
# Celery worker's children): what is loaded at start is frozen out of collection, and these are
# the generation thresholds afterwards. Python's own (700, 10, 10) collected the young
# generation every few hundred allocations, which at hundreds of calls in flight promoted the
# calls' live objects and made full collections scan them again and again.
GC_THRESHOLDS = env_ints("GC_THRESHOLDS", (50_000, 20, 100))
# Deployment health (regions/services.py): a process writes the successes of one deployment
# at most once per this many seconds, in one UPDATE (failures at once); 0 writes every success.
DEPLOYMENT_HEALTH_FLUSH_SECONDS = env_int("DEPLOYMENT_HEALTH_FLUSH_SECONDS", 1)
if DEPLOYMENT_HEALTH_FLUSH_SECONDS < 0:
    raise ImproperlyConfigured("DEPLOYMENT_HEALTH_FLUSH_SECONDS must be 0 or more.")
# The built-in Azure OpenAI simulator, mounted at /_simulator/ only when COPILOT_SIMULATOR is
# set (`make run` sets it; DEBUG alone does not). Its control endpoints (request log, behaviours)
# need COPILOT_SIMULATOR_TOKEN; without it they are not served.
# The demo deployments point at COPILOT_SIMULATOR_URL and read their key from
# AZURE_OPENAI_KEY_SIMULATOR, which the simulator accepts whatever its value.
COPILOT_SIMULATOR = env_bool("COPILOT_SIMULATOR", False)
COPILOT_SIMULATOR_TOKEN = env_str("COPILOT_SIMULATOR_TOKEN", "")
if COPILOT_SIMULATOR and PRODUCTION:
    raise ImproperlyConfigured("COPILOT_SIMULATOR must be off when DJANGO_ENV=production.")
COPILOT_SIMULATOR_URL = env_str("COPILOT_SIMULATOR_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}/_simulator")
if COPILOT_SIMULATOR:
    import os

    os.environ.setdefault("AZURE_OPENAI_KEY_SIMULATOR", "simulator-key-not-a-secret")

# Usage limits and abuse rules (copilot_admin/usage/).
# Without counters (Redis down) copilot calls are refused with 503 limits_unavailable, unless
# USAGE_LIMITS_FAIL_OPEN admits them uncounted (logged either way).
USAGE_LIMITS_FAIL_OPEN = env_bool("USAGE_LIMITS_FAIL_OPEN", False)
# Notification e-mails: retried with exponential backoff (base, cap, attempts) while SMTP fails.
USAGE_EMAIL_RETRY_BACKOFF_SECONDS = env_int("USAGE_EMAIL_RETRY_BACKOFF_SECONDS", 30)
USAGE_EMAIL_RETRY_BACKOFF_MAX_SECONDS = env_int("USAGE_EMAIL_RETRY_BACKOFF_MAX_SECONDS", 1800)
USAGE_EMAIL_MAX_RETRIES = env_int("USAGE_EMAIL_MAX_RETRIES", 10)

# Webhooks (copilot_admin/usage/webhooks.py): signing secrets are encrypted at rest with a key
# derived from WEBHOOK_SECRETS_KEY (default: derived from DJANGO_SECRET_KEY; set it to rotate
# apart). Only https:// URLs resolving to public addresses are accepted; WEBHOOK_ALLOW_HTTP_LOOPBACK
# (development and tests only, refused in production) also allows http:// and https:// to loopback.
WEBHOOK_SECRETS_KEY = env_str("WEBHOOK_SECRETS_KEY", "")
WEBHOOK_ALLOW_HTTP_LOOPBACK = env_bool("WEBHOOK_ALLOW_HTTP_LOOPBACK", not PRODUCTION)
if WEBHOOK_ALLOW_HTTP_LOOPBACK and PRODUCTION:
    raise ImproperlyConfigured("WEBHOOK_ALLOW_HTTP_LOOPBACK must be off when DJANGO_ENV=production.")
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
# A failed attempt (5xx, timeout, connection error) is retried after BACKOFF * 2**(n-1) seconds,
# capped at BACKOFF_MAX, up to MAX_ATTEMPTS attempts in all; 3xx and 4xx answers are not retried.
WEBHOOK_RETRY_BACKOFF_SECONDS = env_int("WEBHOOK_RETRY_BACKOFF_SECONDS", 30)
WEBHOOK_RETRY_BACKOFF_MAX_SECONDS = env_int("WEBHOOK_RETRY_BACKOFF_MAX_SECONDS", 3600)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8)
# This many deliveries in a row failing for good switch the webhook off and e-mail the administrators.
WEBHOOK_DISABLE_AFTER_FAILURES = env_int("WEBHOOK_DISABLE_AFTER_FAILURES", 5)
# How old a signed timestamp receivers should accept (the README's verification recipe).
WEBHOOK_REPLAY_WINDOW_SECONDS = env_int("WEBHOOK_REPLAY_WINDOW_SECONDS", 300)

# Celery beat (the Procfile's `beat`): periodic tasks.
from celery.schedules import crontab  # noqa: E402  (only the beat schedule needs it)

CELERY_BEAT_SCHEDULE = {
    "usage-review-patterns": {"task": "copilot_admin.usage.tasks.review_usage_patterns", "schedule": crontab(minute=7)},
    "usage-maintenance": {"task": "copilot_admin.usage.tasks.usage_maintenance", "schedule": crontab(minute="*/5")},
    # After the hour's last roll-up increments have committed.
    "usage-review-anomalies": {"task": "copilot_admin.usage.tasks.review_anomalies", "schedule": crontab(minute=3)},
    "usage-warning-digests": {"task": "copilot_admin.usage.tasks.send_warning_digests",
                              "schedule": crontab(hour=0, minute=15)},
}

# The audit log (copilot_admin/audit/): each tenant keeps its entries AUDIT_RETENTION_DEFAULT_DAYS
# unless it has its own period, which is never below the platform minimum
# AUDIT_RETENTION_MIN_DAYS. A daily task purges expired entries, AUDIT_PURGE_BATCH_SIZE at a time.
AUDIT_RETENTION_MIN_DAYS = env_int("AUDIT_RETENTION_MIN_DAYS", 365)
AUDIT_RETENTION_DEFAULT_DAYS = env_int("AUDIT_RETENTION_DEFAULT_DAYS", 730)
AUDIT_PURGE_BATCH_SIZE = env_int("AUDIT_PURGE_BATCH_SIZE", 5000)
if AUDIT_RETENTION_DEFAULT_DAYS < AUDIT_RETENTION_MIN_DAYS:
    raise ImproperlyConfigured("AUDIT_RETENTION_DEFAULT_DAYS must not be below AUDIT_RETENTION_MIN_DAYS.")
CELERY_BEAT_SCHEDULE["audit-purge-expired"] = {
    "task": "copilot_admin.audit.tasks.audit_purge_expired", "schedule": crontab(hour=2, minute=41),
}
# Entries are appended unsealed; the sealer links them into their chains every few seconds
# (AUDIT_SEAL_INTERVAL_SECONDS), AUDIT_SEAL_BATCH_SIZE per transaction. Without a broker (tasks
# in-process, no beat: `make run`) each transaction's entries are sealed right after it commits.
AUDIT_SEAL_INTERVAL_SECONDS = env_int("AUDIT_SEAL_INTERVAL_SECONDS", 5)
AUDIT_SEAL_BATCH_SIZE = env_int("AUDIT_SEAL_BATCH_SIZE", 1000)
AUDIT_SEAL_ON_COMMIT = not CELERY_BROKER_URL
# The periodic sealer reads only entries of the last AUDIT_SEAL_WINDOW_HOURS (on PostgreSQL the
# recent monthly partitions); the hourly audit maintenance seals anything older, creates the
# months ahead and drops the past months the purge emptied, waiting at most
# AUDIT_PARTITION_LOCK_TIMEOUT_MS for the table's lock (copilot_admin/audit/partitions.py).
AUDIT_SEAL_WINDOW_HOURS = env_int("AUDIT_SEAL_WINDOW_HOURS", 24)
AUDIT_PARTITION_LOCK_TIMEOUT_MS = env_int("AUDIT_PARTITION_LOCK_TIMEOUT_MS", 500)
CELERY_BEAT_SCHEDULE["audit-maintenance"] = {
    "task": "copilot_admin.audit.tasks.audit_maintenance", "schedule": crontab(minute=17),
}
# Signed checkpoints (copilot_admin/audit/checkpoints.py): each seal records the chain head,
# signed with HMAC-SHA256 under AUDIT_CHECKPOINT_KEY (at least 32 characters), named by
# AUDIT_CHECKPOINT_KEY_ID (recorded with each checkpoint, so a rotated key stays identifiable).
# Required when DJANGO_ENV=production; a fixed development key is used otherwise.
AUDIT_CHECKPOINT_KEY = env_str("AUDIT_CHECKPOINT_KEY", "")
AUDIT_CHECKPOINT_KEY_ID = env_str("AUDIT_CHECKPOINT_KEY_ID", "")
if PRODUCTION:
    if len(AUDIT_CHECKPOINT_KEY) < 32 or not AUDIT_CHECKPOINT_KEY_ID:
        raise ImproperlyConfigured(
            "AUDIT_CHECKPOINT_KEY (at least 32 characters) and AUDIT_CHECKPOINT_KEY_ID must be set when "
            "DJANGO_ENV=production."
        )
elif not AUDIT_CHECKPOINT_KEY:
    AUDIT_CHECKPOINT_KEY = "development-only-audit-checkpoint-key-never-use-in-production"
    AUDIT_CHECKPOINT_KEY_ID = AUDIT_CHECKPOINT_KEY_ID or "dev"
AUDIT_CHECKPOINT_KEY_ID = AUDIT_CHECKPOINT_KEY_ID or "default"
# Each day's checkpoints e-mailed to each tenant's auditors (copilot_admin/compliance/checkpoint_mail.py).
AUDIT_CHECKPOINT_EMAIL = env_bool("AUDIT_CHECKPOINT_EMAIL", False)
CELERY_BEAT_SCHEDULE["compliance-checkpoints-mail"] = {
    "task": "copilot_admin.compliance.tasks.checkpoints_mail_daily", "schedule": crontab(hour=0, minute=23),
}
CELERY_BEAT_SCHEDULE["audit-seal"] = {
    "task": "copilot_admin.audit.tasks.audit_seal_pending", "schedule": float(AUDIT_SEAL_INTERVAL_SECONDS),
    # A seal that waited past the next one is redundant: the next seal does its work.
    "options": {"expires": float(AUDIT_SEAL_INTERVAL_SECONDS)},
}
# Several "status" choice sets share one field name in the API schema; name them apart.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update({
    "TenantStatusEnum": "tenants.models.TenantStatus",
    "AbuseCaseStatusEnum": "copilot_admin.usage.models.CaseStatus",
    "SsoDomainStatusEnum": "copilot_admin.identity.models.SsoDomainStatus",
    "SsoDomainStatusFilterEnum": ["pending", "approved", "rejected", "all"],
})

# MFA (copilot_admin/identity/mfa.py). TOTP through django-otp; its own per-device throttle is
# off (factor 0) because every second factor goes through one account throttle (MFA_FAILURE_LIMIT
# failures within MFA_FAILURE_WINDOW_MINUTES refuse further attempts until the window ends).
OTP_TOTP_ISSUER = env_str("MFA_ISSUER", "copilot-admin")
OTP_TOTP_THROTTLE_FACTOR = 0
MFA_FAILURE_LIMIT = env_int("MFA_FAILURE_LIMIT", 5)
MFA_FAILURE_WINDOW_SECONDS = env_int("MFA_FAILURE_WINDOW_MINUTES", 15) * 60
# A password typed within MFA_REAUTH_SECONDS (login or the re-authentication page) allows adding
# or removing factors; the second step of a login must follow the password within MFA_PENDING_SECONDS.
MFA_REAUTH_SECONDS = env_int("MFA_REAUTH_SECONDS", 300)
MFA_PENDING_SECONDS = env_int("MFA_PENDING_SECONDS", 300)
# WebAuthn relying party: its id (a host name) and origin; unset, both follow the request's host
# (already checked against DJANGO_ALLOWED_HOSTS).
WEBAUTHN_RP_NAME = env_str("WEBAUTHN_RP_NAME", "copilot-admin")
WEBAUTHN_RP_ID = env_str("WEBAUTHN_RP_ID", "")
WEBAUTHN_ORIGIN = env_str("WEBAUTHN_ORIGIN", "")

# Single sign-on (identity/): the redirect URI registered at the tenants' identity providers.
# Empty: built from the request's host (`<scheme>://<host>/login/sso/callback/`); set it when the
# portal runs behind a proxy that changes the host or scheme.
SSO_CALLBACK_URL = env_str("SSO_CALLBACK_URL", "")
# How long a started sign-in (state, nonce, PKCE verifier in the session) may take to come back.
SSO_FLOW_MAX_AGE_SECONDS = 600
