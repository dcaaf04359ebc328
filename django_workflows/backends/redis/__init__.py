"""The Redis backend (port of go-workflows ``backend/redis``), used through django-redis::

    WORKFLOWS = {"default": {"BACKEND": "django_workflows.backends.redis.RedisBackend",
                             "OPTIONS": {"connection": "workflows", "key_prefix": "myapp:"}}}

where ``connection`` names a django-redis cache in ``CACHES``. See ``backend`` for the design.
"""

from __future__ import annotations

from .backend import RedisBackend

__all__ = ["RedisBackend"]
