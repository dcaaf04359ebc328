"""Benchmarks of django_workflows against DBOS Transact (issue 7): see ``bench/README.md``.

Nothing in this package imports Django at import time: ``bench.run`` and the DBOS side run
without it, and only the modules that drive our engine configure ``bench.settings``.
"""
