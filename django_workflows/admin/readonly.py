"""The base of the workflow admin's pages: rows Django's own add, change and delete views never
touch. Instances and schedules change only through the Client (the pages' actions, each behind
its permission), the Workers page's rows only by the workers themselves."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Removal and deletion go through the Client (the "remove"/"delete" actions), whose
        # operations keep the store consistent, never through Django's delete.
        return False
