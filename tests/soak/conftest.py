"""Fixtures of the soak's tests: ``store`` (the ORM and the Redis store of the Django tests)."""

from tests.django.stores import store  # noqa: F401
