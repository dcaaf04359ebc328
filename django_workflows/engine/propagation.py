"""Context propagation (port of go-workflows ``workflow/propagation.go``).

A propagator carries metadata (a ``dict[str, str]``) across process boundaries: from the code
that starts a workflow into the workflow, and from the workflow into the activities and
sub-workflows it schedules. Typical uses are tracing context, a tenant id or a request id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .core import Metadata

if TYPE_CHECKING:
    from .context import Context


class ContextPropagator(Protocol):
    def inject(self, metadata: Metadata) -> None:
        """Client side: copy ambient values (contextvars) into ``metadata`` of a new instance."""

    def extract(self, metadata: Metadata) -> None:
        """Activity side: set ambient values from ``metadata``; runs in the activity's own
        ``contextvars`` context, so values set here do not leak to other tasks."""

    def inject_from_workflow(self, ctx: Context, metadata: Metadata) -> None:
        """Workflow side: copy values of ``ctx`` into the metadata of an activity or sub-workflow."""

    def extract_to_workflow(self, ctx: Context, metadata: Metadata) -> Context:
        """Workflow side: return ``ctx`` with values taken from the instance's metadata."""
