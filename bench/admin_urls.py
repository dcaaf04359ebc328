"""URLs of the admin-at-scale bench (``bench.admin_settings``): the admin only."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
