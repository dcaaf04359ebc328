"""Our own fault soak (issue 14): many workflows with activities, a timer, a signal and a
sub-workflow run on ``manage.py runworkflows`` worker processes while the soak SIGKILLs some of
them and restarts the store's server; afterwards an invariant check over the store and the
activity ledger says whether anything was lost, duplicated or left behind.

    python -m tests.soak --backend mysql --workflows 1000 --workers 3 --kills 20 --restart

``run`` drives a soak, ``check`` and ``leftovers`` hold the invariants, ``stores`` the servers the
soak owns; ``test_soak`` runs a small soak per backend in the default test run, ``test_check``
tests the check on broken data. The workflows are in ``testproject/testapp/soak.py``.
docs/reliability.md ("Fault soak") has the figures.
"""
