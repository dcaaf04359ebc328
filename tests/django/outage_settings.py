"""The test project's settings with a short SQLite busy timeout, for worker subprocesses that
must see a locked database fail soon (``test_worker_outage``)."""

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES

DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 1
# The example order flow's reminder timer fires soon, so a test has a task due at a known moment.
EXAMPLE_REMINDER_SECONDS = 3
