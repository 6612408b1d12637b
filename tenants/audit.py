"""Every audited action, by name (Zulip's ``AuditLogEventType``): grep a verb to find who writes it.

``AuditEvent.verb`` stores the value; services pass a member, never a free string, so a new kind of
event is added here first and the audit log's filter lists every kind there is.
"""

from __future__ import annotations

from django.db import models


class AuditVerb(models.TextChoices):
    ORGANIZATION_CREATED = "organization.created"
    ORGANIZATION_DEFAULT_MODEL_CHANGED = "organization.default_model_changed"
    ORGANIZATION_API_KEY_MAX_LIFETIME_CHANGED = "organization.api_key_max_lifetime_changed"
    TEAM_CREATED = "team.created"
    MEMBERSHIP_SET = "membership.set"
    MEMBERSHIP_REMOVED = "membership.removed"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    QUOTA_SET = "quota.set"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_DEACTIVATED = "webhook.deactivated"
    WEBHOOK_DELIVERY_REDELIVERED = "webhook_delivery.redelivered"
    CATEGORY_CREATED = "category.created"
    CATEGORY_UPDATED = "category.updated"
    CATEGORY_DELETED = "category.deleted"
    MODEL_VERSION_REGISTERED = "model_version.registered"
    ALIAS_PROMOTED = "alias.promoted"
    ALIAS_ROLLED_BACK = "alias.rolled_back"
    PROMPT_TEMPLATE_CREATED = "prompt_template.created"
    PROMPT_TEMPLATE_EDITED = "prompt_template.edited"
    CATEGORY_RUBRIC_EDITED = "category_rubric.edited"
    QUALITY_SETTINGS_CHANGED = "quality_settings.changed"
    GENERATION_SUBMITTED = "generation.submitted"
    GENERATION_CANCEL_REQUESTED = "generation.cancel_requested"
    GENERATION_STARTED = "generation.started"
    GENERATION_RETRIED = "generation.retried"
    GENERATION_JUDGING = "generation.judging"
    GENERATION_REFINED = "generation.refined"
    GENERATION_FAILED_QUALITY = "generation.failed_quality"
    GENERATION_SUCCEEDED = "generation.succeeded"
    GENERATION_FAILED = "generation.failed"
    GENERATION_CANCELED = "generation.canceled"
    TRAINING_SUBMITTED = "training.submitted"
    TRAINING_CANCEL_REQUESTED = "training.cancel_requested"
    TRAINING_STARTED = "training.started"
    TRAINING_RETRIED = "training.retried"
    TRAINING_SUCCEEDED = "training.succeeded"
    TRAINING_FAILED = "training.failed"
    TRAINING_CANCELED = "training.canceled"
    IMAGE_APPROVED = "image.approved"
    IMAGE_REJECTED = "image.rejected"
    IMAGE_PUBLISHED = "image.published"
    IMAGE_UNPUBLISHED = "image.unpublished"
