"""The Django admin's sign-in form, behind the studio's lockout (``studio.lockout``): the same
failures count on both doors, so ``/admin/login/`` is no way around the limits."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from .lockout import client_address, login_failure_record, login_failures_clear, login_lockout


class LockoutAdminAuthenticationForm(AdminAuthenticationForm):
    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))
        ip = client_address(self.request) if self.request is not None else None
        lockout = login_lockout(username=username, ip=ip)
        if lockout is not None:
            raise ValidationError(lockout.message(), code="locked_out")
        try:
            cleaned = super().clean()
        except ValidationError:
            login_failure_record(username=username, ip=ip)
            raise
        if self.get_user() is not None:
            login_failures_clear(username=username, ip=ip)
        return cleaned
