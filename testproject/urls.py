"""URLs of the test project: the admin, plus the example app when it is present."""

from importlib.util import find_spec

from django.conf import settings
from django.contrib import admin
from django.urls import include, path


def _module_exists(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


urlpatterns = [
    path("admin/", admin.site.urls),
]

if _module_exists("testproject.example.urls"):
    urlpatterns.append(path("", include("testproject.example.urls")))

if "testproject.testapp" in settings.INSTALLED_APPS:
    urlpatterns.append(path("testapp/", include("testproject.testapp.urls")))
