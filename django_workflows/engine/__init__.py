"""The workflow engine: pure Python, no Django, no Redis.

This package is the port of go-workflows' core (``workflow/``, ``internal/``, ``backend/history``,
``registry/``, ``client/``, ``worker/``). It knows nothing about where history is stored: storage
lives behind the ``Backend`` protocol in ``engine.backend``, implemented by
``django_workflows.backends``. A test keeps this package free of ``django`` and ``redis`` imports.
"""
