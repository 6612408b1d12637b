"""Organizations (tenants), teams, memberships, API keys and the audit log;
platform infrastructure: idempotency keys, quotas + usage ledger, webhook endpoints + deliveries."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from .audit import AuditVerb
from .roles import Role

MAX_API_KEY_LIFETIME_DAYS = 3650  # the longest cap an owner may set: ten years


def validate_time_zone(value: str) -> None:
    """An IANA time-zone name zoneinfo knows ('Europe/Berlin', 'UTC')."""
    import zoneinfo

    from django.core.exceptions import ValidationError

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"Unknown time zone '{value}'; use an IANA name such as 'Europe/Berlin' or 'UTC'."
        ) from None


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    # Name of the base model (or "version:<id>") used when a request names neither model nor
    # category. The demo switches from "tiny" to "shapes" once the shapes build is ready.
    default_model = models.CharField(max_length=120, default="tiny")
    # Longest an API key of this organization may live; null: no limit (keys may also never
    # expire). Checked when a key is created (tenants.services.api_key_create).
    api_key_max_lifetime_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_API_KEY_LIFETIME_DAYS)],
        help_text="Longest an API key may live, in days; empty for no limit. "
        "When set, every new key must have an expiry within it.",
    )
    # Catalog schedules run in this zone unless a schedule names its own (an IANA name).
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="IANA time zone."
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug"], name="team_slug_unique_per_org"
            )
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.slug}"


class Membership(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    teams = models.ManyToManyField(Team, blank=True, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"


class ApiKey(models.Model):
    """A team's API key. The secret is shown once; only its SHA-256 is stored (it is 256 random
    bits, so a slow password hash would add latency to every request and no security)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    # The person answerable for the key: its actions never exceed their current role's, and it
    # stops working when they leave. A key minted by a key names the person behind that key.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The key that minted this one (``manage_keys``), if any: this key expires no later than it
    # and is revoked with it.
    created_by_api_key = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="created_keys"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def is_active(self, *, now: timezone.datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class AuditEvent(models.Model):
    """Append-only record of a security-relevant change, written by services."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verb = models.CharField(max_length=80, db_index=True, choices=AuditVerb.choices)
    # Indexed with the organization and the id (``audit_org_object``): every read is scoped.
    object_type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-at"]),
            # One object's history (``?object_type=&object_id=``), newest first.
            models.Index(
                fields=["organization", "object_type", "object_id", "-at"], name="audit_org_object"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.verb} {self.object_type}:{self.object_id}"


# --- Platform infrastructure: idempotency, quotas + usage ledger, webhooks ----------------------


class IdempotencyRecord(models.Model):
    """The first response to a create sent with an ``Idempotency-Key`` (see tenants/idempotency.py).

    Inserting the ``in_progress`` row is the lock: the unique constraint on (organization,
    scope, key) lets exactly one request run the handler. ``scope`` is whose key it is
    (``key:<api key id>`` or ``user:<user id>``), so principals never share responses.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="idempotency_records"
    )
    scope = models.CharField(max_length=64, default="")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "scope", "key"], name="idempotency_key_unique_per_scope"
            )
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}] {self.state}"


class Quota(models.Model):
    """Limits for an organization (``team`` null: org-wide) or one of its teams; null = unlimited.

    The org-wide row always exists once anything was reserved: ``quota_reserve`` locks it, so
    reservations of one organization are serialized and can never overshoot a limit together.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="quotas")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas"
    )
    images_per_day = models.PositiveIntegerField(null=True, blank=True)
    gpu_seconds_per_month = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(team__isnull=True),
                name="one_org_wide_quota_per_org",
            ),
            models.UniqueConstraint(
                fields=["organization", "team"],
                condition=models.Q(team__isnull=False),
                name="one_quota_per_team",
            ),
        ]

    def __str__(self) -> str:
        scope = self.team.slug if self.team_id else "org-wide"
        return f"{self.organization.slug}/{scope} quota"


class UsageRecord(models.Model):
    """One line of the usage ledger: a reservation that is later settled (actual usage) or
    released (failure or cancel). It counts in the period it was reserved in."""

    class Kind(models.TextChoices):
        IMAGES = "images", "Images"
        GPU_SECONDS = "gpu_seconds", "GPU-seconds"

    class State(models.TextChoices):
        RESERVED = "reserved", "Reserved"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="usage_records"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = models.FloatField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.RESERVED)
    reference = models.CharField(max_length=200)
    period_start = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reference", "kind"], name="usage_reference_kind_unique"
            )
        ]
        indexes = [models.Index(fields=["organization", "kind", "period_start", "state"])]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reference} {self.kind}={self.amount:g} {self.state}"


class WebhookEndpoint(models.Model):
    """A URL that receives signed event notifications for a team (or the whole organization when
    ``team`` is null). The secret is kept (it signs every delivery) but shown only at creation."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint. ``delivery_id`` is the ``webhook-id`` header: the same on every
    retry, so receivers can drop duplicates."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=60)
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    payload = models.JSONField()
    attempts = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # When the next attempt is due; while an attempt runs, the end of its lease.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # An endpoint's delivery log, newest first.
            models.Index(
                fields=["organization", "endpoint", "-created_at"], name="delivery_org_endpoint"
            ),
        ]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} -> {self.endpoint_id} ({self.status})"


class WebhookDeliveryAttempt(models.Model):
    """One HTTP attempt of a delivery: what came back, or why nothing did, and how long it took."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error}"
