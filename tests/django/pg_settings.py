"""The test project's settings with the PostgreSQL connection of ``WORKFLOWS_TEST_DATABASE``
(JSON) merged into ``DATABASES["default"]``: its ``OPTIONS`` into the options, the other keys
over the settings. Worker subprocesses of ``test_postgres_many_workers`` use it to reach the
server through Django's connection pool (``{"OPTIONS": {"pool": {...}}}``) or through PgBouncer
(``{"PORT": ..., "DISABLE_SERVER_SIDE_CURSORS": true}``). ``WORKFLOWS_TEST_BACKENDS`` (JSON) adds
ORM backend aliases to ``WORKFLOWS``, each with its options."""

import json
import os

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES, WORKFLOWS

_database = json.loads(os.environ.get("WORKFLOWS_TEST_DATABASE") or "{}")
DATABASES["default"].setdefault("OPTIONS", {}).update(_database.pop("OPTIONS", {}))
DATABASES["default"].update(_database)
for _alias, _options in json.loads(os.environ.get("WORKFLOWS_TEST_BACKENDS") or "{}").items():
    WORKFLOWS[_alias] = {"BACKEND": "django_workflows.backends.orm.OrmBackend", "OPTIONS": _options}
