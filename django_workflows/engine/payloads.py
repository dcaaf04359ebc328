"""Payload size limits (pure core; Temporal's blob size limits, which go-workflows lacks).

Every payload is stored in the history and read again by every replay, and a store has its own
ceiling (MariaDB's ``max_allowed_packet``): a payload past it failed deep in a commit, where the
worker could only retry. ``PayloadLimits.check`` runs where a payload is made, before anything
is written: above ``warn_size`` it logs a warning (and tells the instrumentation, for the
metric); above ``max_size`` it raises ``PayloadTooLarge`` naming the size and the limit. The
Client checks start inputs and signal values, the executor what workflow code produces (inputs
of activities and sub-workflows, signals, side effects, results), the activity runner results
and heartbeat details.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .converter import Payload
from .errors import PayloadTooLarge

logger = logging.getLogger("django_workflows.payloads")

#: Temporal's defaults (``BlobSizeLimitWarn`` / ``BlobSizeLimitError``): well below the packet
#: limits of MySQL/MariaDB (16 MiB and more by default), and large enough for any document a
#: workflow should carry by value rather than by reference.
DEFAULT_PAYLOAD_WARN_SIZE = 512 * 1024
DEFAULT_MAX_PAYLOAD_SIZE = 2 * 1024 * 1024

#: Told of each payload above the warning size: (its kind, its size in bytes).
LargePayloadObserver = Callable[[str, int], None]


def payload_size(payload: Payload) -> int:
    """The size of ``payload`` in bytes, as the store holds it (UTF-8)."""
    return len(payload.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class PayloadLimits:
    """The sizes (in UTF-8 bytes) above which a payload is reported and refused."""

    warn_size: int = DEFAULT_PAYLOAD_WARN_SIZE
    max_size: int = DEFAULT_MAX_PAYLOAD_SIZE
    #: Counts the payloads above ``warn_size`` (the instrumentation's metric); None: only logs.
    observe: LargePayloadObserver | None = None

    def __post_init__(self) -> None:
        if self.max_size < 1 or self.warn_size < 1:
            raise ValueError(f"payload sizes must be positive, got warn {self.warn_size!r}, max {self.max_size!r}")
        if self.warn_size > self.max_size:
            raise ValueError(
                f"payload_warn_size ({self.warn_size:,}) must not exceed max_payload_size ({self.max_size:,})"
            )

    def check(self, payload: Payload, kind: str, where: str = "", *, warn: bool = True) -> Payload:
        """Return ``payload``; warn when it is above ``warn_size`` (unless ``warn`` is false),
        raise ``PayloadTooLarge`` when it is above ``max_size``. ``kind`` (``"activity
        result"``, a label of the metric) and ``where`` (``"of activity charge, instance
        o-1"``) name it in both."""
        # A UTF-8 character takes 1 to 4 bytes: most payloads are decided from their length.
        if len(payload) * 4 <= self.warn_size:
            return payload
        size = payload_size(payload)
        what = f"{kind} {where}" if where else kind
        if size > self.max_size:
            raise PayloadTooLarge(size=size, limit=self.max_size, what=what)
        if warn and size > self.warn_size:
            logger.warning(
                "%s is %s bytes, above the payload warning size of %s bytes (payload_warn_size; the limit is "
                "%s): every replay reads it again; keep large data outside the workflow and pass a reference",
                what, f"{size:,}", f"{self.warn_size:,}", f"{self.max_size:,}",
            )
            if self.observe is not None:
                self.observe(kind, size)
        return payload
