"""Settings shared by every environment. The only module that reads the environment.

Embedded defaults need no server: SQLite and media under ``var/``, kombu's filesystem broker,
device ``cpu``. ``DATABASE_URL``, ``CELERY_BROKER_URL`` and ``EASEL_STORAGE=s3`` (+ ``AWS_*``)
switch to PostgreSQL, Redis/RabbitMQ and S3. Any variable may be given as ``<NAME>_FILE``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
env.smart_cast = False
VAR_DIR = Path(env.str("EASEL_VAR_DIR", default=str(BASE_DIR / "var")))


def _secret(name: str, default: str | None = None) -> str | None:
    """Read ``NAME`` or the file named by ``NAME_FILE`` (Docker/Kubernetes secrets)."""
    file_path = env.str(f"{name}_FILE", default="")
    if file_path:
        return Path(file_path).read_text().strip()
    return env.str(name, default=default)


DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = _secret("SECRET_KEY", default="") or ""
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, served locally: /api/docs/ works offline
    "django_celery_beat",
    "django_prometheus",
    "tenants",
    "models_registry",
    "provenance",
    "generation",
    "training",
    "catalog",
    "studio",
]

MIDDLEWARE = [
    # First and last: django-prometheus times every request and counts responses by view.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # A request id (X-Request-ID, echoed back) on every log line the request writes.
    "tenants.logcontext.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'easel.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let web, worker and beat share the embedded database.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
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

# --- Studio sign-in -------------------------------------------------------------------------------
LOGIN_URL = "studio:login"
LOGIN_REDIRECT_URL = "studio:home"
LOGOUT_REDIRECT_URL = "studio:login"

# --- Static files and storage --------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"

EASEL_STORAGE = env.str("EASEL_STORAGE", default="local")
if EASEL_STORAGE not in {"local", "s3"}:
    raise ValueError(f"EASEL_STORAGE must be 'local' or 's3', not {EASEL_STORAGE!r}")

AWS_ACCESS_KEY_ID = _secret("AWS_ACCESS_KEY_ID", default=None)
AWS_SECRET_ACCESS_KEY = _secret("AWS_SECRET_ACCESS_KEY", default=None)
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="easel")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default=None)
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="us-east-1")
AWS_S3_SIGNATURE_VERSION = "s3v4"
AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", default="path")
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
AWS_QUERYSTRING_EXPIRE = env.int("EASEL_DOWNLOAD_URL_TTL", default=300)
AWS_S3_FILE_OVERWRITE = True

if EASEL_STORAGE == "s3":
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {}}
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": f"/{MEDIA_URL}"},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Celery --------------------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport needs its folders to exist before any process connects.
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("EASEL_TASK_SOFT_TIME_LIMIT", default=30 * 60)
CELERY_TASK_TIME_LIMIT = env.int("EASEL_TASK_TIME_LIMIT", default=35 * 60)
CELERY_TASK_ALWAYS_EAGER = env.bool("EASEL_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("EASEL_WORKER_MAX_MEMORY_KB", default=0) or None
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis redelivers an unacked task after the visibility timeout: keep it above the hard limit
    # so a long task is never handed to a second worker while the first still runs it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 15 * 60}

# --- Cache: rate-limit counters and waiting slots (Redis so every web process counts together) ---
EASEL_CACHE_URL = env.str("EASEL_CACHE_URL", default="locmem://")
if EASEL_CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",  # Django's, one client per pool
            "LOCATION": EASEL_CACHE_URL,
            "KEY_PREFIX": "easel",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Rate limits (DRF's "N/s|m|h|d"; empty turns one off), answered with 429 and Retry-After.
EASEL_RATE_LIMIT_PER_KEY = env.str("EASEL_RATE_LIMIT_PER_KEY", default="1200/min")
EASEL_RATE_LIMIT_WRITES_PER_KEY = env.str("EASEL_RATE_LIMIT_WRITES_PER_KEY", default="600/min")
EASEL_RATE_LIMIT_PER_ORG = env.str("EASEL_RATE_LIMIT_PER_ORG", default="6000/min")
# At most this many requests of one organization hold a web worker in `Prefer: wait` at once.
EASEL_MAX_WAITERS_PER_ORG = env.int("EASEL_MAX_WAITERS_PER_ORG", default=4)

# --- REST framework and OpenAPI ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.permissions.IsOrgMember"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "tenants.api.schema.EaselAutoSchema",
    "EXCEPTION_HANDLER": "tenants.api.errors.exception_handler",
    # Per key (all requests, and writes), per organization: tenants.api.throttling.
    "DEFAULT_THROTTLE_CLASSES": ["tenants.api.throttling.PlatformRateThrottle"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Easel API",
    "DESCRIPTION": "Multi-tenant image generation: models, generations, trainings, catalogs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "BuildStatusEnum": "models_registry.models.BuildStatus",
        "VersionStatusEnum": "models_registry.models.VersionStatus",
        "TrainingModeEnum": "training.models.TrainingMode",
        "RunModeEnum": "catalog.models.RunMode",
        "VersionKindEnum": "models_registry.models.VersionKind",
        "UploadKindEnum": "generation.models.UploadKind",
    },
}

# Request bodies above this many bytes are refused with 413 (uploads get their own limits).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("EASEL_MAX_BODY_BYTES", default=1024 * 1024)

# --- Easel ---------------------------------------------------------------------------------------
EASEL_DEVICE = env.str("EASEL_DEVICE", default="cpu")
EASEL_MODEL_CACHE_DIR = Path(env.str("EASEL_MODEL_CACHE_DIR", default=str(VAR_DIR / "model-cache")))
EASEL_MODEL_CACHE_MAX_BYTES = env.int("EASEL_MODEL_CACHE_MAX_BYTES", default=20 * 1024**3)
EASEL_BUILD_CACHE_DIR = Path(
    env.str("EASEL_BUILD_CACHE_DIR", default=str(Path.home() / ".cache" / "easel" / "models"))
)
EASEL_PIPELINE_CACHE_SIZE = env.int("EASEL_PIPELINE_CACHE_SIZE", default=2)
EASEL_REQUIRE_SERVICES = env.bool("EASEL_REQUIRE_SERVICES", default=False)
# Bearer token that lets probes and monitors read /readyz (as staff sessions can); empty: staff.
EASEL_READINESS_TOKEN = _secret("EASEL_READINESS_TOKEN", default="") or ""
# seed_demo makes people with a published password: only local.py and test.py turn this on.
EASEL_DEMO_SEED_ALLOWED = False
EASEL_API_KEY_PREFIX = "esl"

# Generation jobs: images per pipeline call (compatible jobs are batched up to this), how long a
# claim holds without a heartbeat, when a pending job's message is assumed lost and resent,
# claims per job, how often the step callback looks for cancels, and the GPU-seconds per step at
# 512×512 used to size a quota reservation (the measured time is settled afterwards).
EASEL_BATCH_SIZE = env.int("EASEL_BATCH_SIZE", default=8)
EASEL_JOB_LEASE_SECONDS = env.int("EASEL_JOB_LEASE_SECONDS", default=600)
# How often a worker renews the leases of the jobs it holds (a background thread, for the whole
# claim: download, load, inference, storing); well under the lease.
EASEL_JOB_HEARTBEAT_SECONDS = env.float("EASEL_JOB_HEARTBEAT_SECONDS", default=30.0)
EASEL_PENDING_RESEND_SECONDS = env.int("EASEL_PENDING_RESEND_SECONDS", default=3600)
EASEL_JOB_MAX_ATTEMPTS = env.int("EASEL_JOB_MAX_ATTEMPTS", default=3)
# A failed attempt that may succeed again is retried after base × 2^attempts seconds (≤ 60).
EASEL_RETRY_BACKOFF_SECONDS = env.float("EASEL_RETRY_BACKOFF_SECONDS", default=5.0)
EASEL_CANCEL_POLL_SECONDS = env.float("EASEL_CANCEL_POLL_SECONDS", default=0.25)
# A worker task keeps claiming pending jobs of its priority for up to this long after its own.
EASEL_WORKER_DRAIN_SECONDS = env.float("EASEL_WORKER_DRAIN_SECONDS", default=60.0)
EASEL_GPU_SECONDS_PER_STEP = env.float("EASEL_GPU_SECONDS_PER_STEP", default=0.05)
# Dynamic batching (as Triton's max_queue_delay): a batch that is not full waits at most this many
# milliseconds for compatible jobs to arrive before its call starts; bulk work may wait longer.
EASEL_BATCH_WINDOW_MS = env.float("EASEL_BATCH_WINDOW_MS", default=5.0)
EASEL_BULK_BATCH_WINDOW_MS = env.float("EASEL_BULK_BATCH_WINDOW_MS", default=50.0)
# Model affinity: within the organization whose turn it is, a worker takes a job for the model it
# has warm before older jobs for other models, unless the organization's oldest job has waited
# this long (no job waits on affinity for more than this).
EASEL_AFFINITY_MAX_WAIT_SECONDS = env.float("EASEL_AFFINITY_MAX_WAIT_SECONDS", default=30.0)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # An idle worker looks for new files this often (kombu's default, 1 s, delays every job).
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = env.float(
        "EASEL_BROKER_POLL_SECONDS", default=0.1
    )

# Hosted image models behind the unified protocol, a JSON object keyed by the name a request
# passes as `model` (see generation/backends.py): {"dalle": {"kind": "openai", "base_url": ...,
# "api_key": ..., "model": "gpt-image-1"}, "imagen": {"kind": "imagen", "project": ..., ...}}.
# Holds credentials, so EASEL_PROVIDERS_FILE may name a secret file instead.
EASEL_PROVIDERS = json.loads(_secret("EASEL_PROVIDERS", default="") or "{}")
if not isinstance(EASEL_PROVIDERS, dict):
    raise ValueError("EASEL_PROVIDERS must be a JSON object keyed by provider name")

# Idempotency keys are kept at least this long (Stripe keeps them 24 h); a periodic task purges.
EASEL_IDEMPOTENCY_TTL_HOURS = env.int("EASEL_IDEMPOTENCY_TTL_HOURS", default=48)
# An in_progress key older than this was left by a request that died before committing anything
# (the response is saved in the handler's transaction), so the next request may take it over.
EASEL_IDEMPOTENCY_LOCK_SECONDS = env.int("EASEL_IDEMPOTENCY_LOCK_SECONDS", default=120)
# Webhooks: per-operation socket timeout (seconds), attempts before a delivery fails, and whether
# URLs may point at private/loopback addresses (never at link-local/metadata ones). Keep it off in
# production; turn it on to send webhooks to a receiver on your own machine or network.
EASEL_WEBHOOK_TIMEOUT = env.float("EASEL_WEBHOOK_TIMEOUT", default=10.0)
EASEL_WEBHOOK_MAX_ATTEMPTS = env.int("EASEL_WEBHOOK_MAX_ATTEMPTS", default=8)
EASEL_WEBHOOK_ALLOW_PRIVATE = env.bool("EASEL_WEBHOOK_ALLOW_PRIVATE", default=False)

# Fine-tuning (training/): limits on each instance photo, checked before it is decoded; how long a
# training claim holds without a heartbeat; where jobs keep checkpoints (so a new worker resumes).
EASEL_TRAINING_MAX_IMAGE_BYTES = env.int("EASEL_TRAINING_MAX_IMAGE_BYTES", default=20 * 1024 * 1024)
EASEL_TRAINING_MAX_IMAGE_PIXELS = env.int("EASEL_TRAINING_MAX_IMAGE_PIXELS", default=40_000_000)
EASEL_TRAINING_LEASE_SECONDS = env.int("EASEL_TRAINING_LEASE_SECONDS", default=300)
EASEL_TRAINING_WORK_DIR = Path(
    env.str("EASEL_TRAINING_WORK_DIR", default=str(VAR_DIR / "training"))
)
EASEL_TRAINING_GPU_SECONDS_PER_STEP = env.float("EASEL_TRAINING_GPU_SECONDS_PER_STEP", default=0.5)

# Catalogs (catalog/): the largest import file, rows per import, characters per cell; how many
# of an organization's catalog jobs may be queued or running at once (across its runs, so one run
# cannot flood the bulk workers), and how many a run submits per step.
EASEL_CATALOG_MAX_FILE_BYTES = env.int("EASEL_CATALOG_MAX_FILE_BYTES", default=200 * 1024 * 1024)
EASEL_CATALOG_MAX_ROWS = env.int("EASEL_CATALOG_MAX_ROWS", default=200_000)
EASEL_CATALOG_MAX_CELL_CHARS = env.int("EASEL_CATALOG_MAX_CELL_CHARS", default=2000)
EASEL_CATALOG_MAX_IN_FLIGHT = env.int("EASEL_CATALOG_MAX_IN_FLIGHT", default=16)
EASEL_CATALOG_CHUNK = env.int("EASEL_CATALOG_CHUNK", default=50)
# An export still "building" this long after it was asked for lost its worker: asked for again.
EASEL_CATALOG_EXPORT_STALE_SECONDS = env.int("EASEL_CATALOG_EXPORT_STALE_SECONDS", default=1800)
# The platform's public address: catalog export manifests link each image through it.
EASEL_PUBLIC_URL = env.str("EASEL_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

# The quality gate (generation/quality.py). Built-in checks always run; the safety detector
# (NudeNet, offline ONNX) runs unless turned off and fails closed. CLIP and the VLM run for the
# organizations that enable them, once configured here: a CLIP checkpoint directory, and an
# OpenAI-compatible chat-completions endpoint with image input (vLLM, Ollama, OpenAI). The LLM
# endpoint refines prompts and drafts rubrics; empty means rules refine and nothing drafts.
EASEL_SAFETY_ENABLED = env.bool("EASEL_SAFETY_ENABLED", default=True)
# 0.8: NudeNet reads round, shaded products (apples) as BUTTOCKS_EXPOSED at up to 0.73.
EASEL_SAFETY_THRESHOLD = env.float("EASEL_SAFETY_THRESHOLD", default=0.8)
# A local checkpoint folder, or s3://bucket/prefix (fetched once into EASEL_BUILD_CACHE_DIR).
EASEL_CLIP_MODEL_PATH = env.str("EASEL_CLIP_MODEL_PATH", default="")
EASEL_CLIP_THRESHOLD = env.float("EASEL_CLIP_THRESHOLD", default=0.25)
EASEL_VLM_URL = env.str("EASEL_VLM_URL", default="")
EASEL_VLM_MODEL = env.str("EASEL_VLM_MODEL", default="")
EASEL_VLM_API_KEY = _secret("EASEL_VLM_API_KEY", default="") or ""
EASEL_LLM_URL = env.str("EASEL_LLM_URL", default="")
EASEL_LLM_MODEL = env.str("EASEL_LLM_MODEL", default="")
EASEL_LLM_API_KEY = _secret("EASEL_LLM_API_KEY", default="") or ""
# Per request to those endpoints: seconds before giving up, and retries (with backoff) after.
EASEL_JUDGE_TIMEOUT_SECONDS = env.float("EASEL_JUDGE_TIMEOUT_SECONDS", default=20.0)
EASEL_JUDGE_MAX_RETRIES = env.int("EASEL_JUDGE_MAX_RETRIES", default=2)
# A job waiting on the CPU worker's judges is handed to another worker after this long.
EASEL_JUDGE_LEASE_SECONDS = env.int("EASEL_JUDGE_LEASE_SECONDS", default=600)


# --- Operations: routing by GPU class, metrics, logs ---------------------------------------------
def _family_queues(pairs: list[str]) -> dict[str, str]:
    """``["sdxl=xl", "sd15"]`` → ``{"sdxl": "xl", "sd15": "sd15"}``, refusing what is not."""
    lanes = {}
    for pair in pairs:
        family, _, lane = (part.strip() for part in pair.partition("="))
        lane = lane or family
        if not (re.fullmatch(r"[a-z0-9]+", family) and re.fullmatch(r"[a-z0-9][a-z0-9_]*", lane)):
            raise ValueError(
                f"EASEL_FAMILY_QUEUES: {pair!r} is not 'family=lane' (e.g. 'sdxl=xl' or 'sdxl')"
            )
        lanes[family] = lane
    return lanes


# Model families whose jobs get queues of their own, so that only workers whose GPU holds the family
# take them: "sdxl=xl" sends sdxl jobs to `interactive-xl` and `bulk-xl`; a bare family is its own
# lane ("sdxl" → `interactive-sdxl`). Other families stay on `interactive` and `bulk`. Every process
# (web, workers, beat) must read the same value: the web and the reaper enqueue.
EASEL_FAMILY_QUEUES = _family_queues(env.list("EASEL_FAMILY_QUEUES", default=[]))
# Bearer token that lets Prometheus read /metrics (as staff sessions can); empty: staff only.
EASEL_METRICS_TOKEN = _secret("EASEL_METRICS_TOKEN", default="") or ""
# A Celery worker serves its own series on this port (0: off) and address; one port per worker
# process (e.g. 9100 + the GPU index). The exporter has no authentication: a private network only.
EASEL_WORKER_METRICS_PORT = env.int("EASEL_WORKER_METRICS_PORT", default=0)
EASEL_WORKER_METRICS_ADDR = env.str("EASEL_WORKER_METRICS_ADDR", default="127.0.0.1")
# prometheus-client's multiprocess mode (gunicorn's workers, a prefork pool): the folder the
# processes write their values to; /metrics then adds up every process on the host.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# `plain` lines, or `json`: one object a line with request_id, organization and job_id.
EASEL_LOG_FORMAT = env.str("EASEL_LOG_FORMAT", default="plain")
if EASEL_LOG_FORMAT not in {"plain", "json"}:
    raise ValueError(f"EASEL_LOG_FORMAT must be 'plain' or 'json', not {EASEL_LOG_FORMAT!r}")
# Celery's own log format would replace the JSON one in workers; the console handler below serves.
CELERY_WORKER_HIJACK_ROOT_LOGGER = EASEL_LOG_FORMAT != "json"

# Provenance (provenance/): every stored image carries C2PA content credentials and an XMP packet
# (IPTC digital source type, credit, a link back). Signed with the organization's chain when
# EASEL_PROVENANCE_ORG_CREDENTIALS_DIR/<slug>/{chain.pem,key.pem} exists, else the platform's
# (PEM text, or *_FILE paths: the signing certificate first, then intermediates; an unencrypted
# PKCS#8 key). Without one, EASEL_PROVENANCE_DEV_CERT signs with a development chain made under
# var/provenance/ (for laptops and tests: turn it off in production); EASEL_PROVENANCE_SIGN=0
# stores images without content credentials.
EASEL_PROVENANCE_SIGN = env.bool("EASEL_PROVENANCE_SIGN", default=True)
EASEL_PROVENANCE_CERT_CHAIN = _secret("EASEL_PROVENANCE_CERT_CHAIN", default="") or ""
EASEL_PROVENANCE_PRIVATE_KEY = _secret("EASEL_PROVENANCE_PRIVATE_KEY", default="") or ""
EASEL_PROVENANCE_ORG_CREDENTIALS_DIR = env.str("EASEL_PROVENANCE_ORG_CREDENTIALS_DIR", default="")
EASEL_PROVENANCE_DEV_CERT = env.bool("EASEL_PROVENANCE_DEV_CERT", default=True)
EASEL_PROVENANCE_DEV_CERT_DIR = VAR_DIR / "provenance"
# Roots that POST /api/v1/provenance/verify reports as trusted (PEM), besides the organizations'
# root.pem files and the development root; an RFC 3161 timestamp authority to countersign with.
EASEL_PROVENANCE_TRUST_ANCHORS = _secret("EASEL_PROVENANCE_TRUST_ANCHORS", default="") or ""
EASEL_PROVENANCE_TSA_URL = env.str("EASEL_PROVENANCE_TSA_URL", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "tenants.logcontext.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s "
            "%(organization)s %(job_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": EASEL_LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("EASEL_LOG_LEVEL", default="INFO")},
}
