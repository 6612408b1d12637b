"""Studio-only state: failed sign-in attempts, counted per username and client address so that
repeated guessing locks that pair out for a while (see ``studio.lockout``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class LoginFailure(models.Model):
    username = models.CharField(max_length=150, help_text="As typed, lower-cased.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["username", "ip", "at"])]
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip} at {self.at:%Y-%m-%d %H:%M:%S}"
