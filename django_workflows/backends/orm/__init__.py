"""The Django ORM backend: workflows stored in SQLite, MySQL/MariaDB or PostgreSQL through the
app's models (port of go-workflows ``backend/sqlite``, ``backend/mysql`` and ``backend/postgres``).

``django_workflows.backends.orm.OrmBackend`` is the documented path (the ``BACKEND`` of a
``WORKFLOWS`` alias). The package is cut by task; see ``docs/architecture.md`` for the map.
"""

from .backend import OrmBackend

__all__ = ["OrmBackend"]
