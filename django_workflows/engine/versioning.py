"""Versioning of workflow code: ``patched`` and ``deprecate_patch`` (Temporal's semantics;
go-workflows has none, its issue #355).

Changing what a workflow does before the point its running instances have reached makes their
replay disagree with their history. A patch lets old and new code live side by side::

    if workflow.patched(ctx, "fraud-check"):
        await workflow.execute_activity(ctx, options, check_fraud, order_id)   # new behaviour

* Live (not replaying), the first ``patched(ctx, id)`` of an execution records a ``PatchMarker``
  event and returns True: new executions, and running ones that reach the call after the
  deploy, take the new branch.
* Replaying, it returns True if the history records the marker in the workflow task being
  replayed (the task that first passed the call), and False if it does not: that task ran
  before the patch existed, so the old branch is what the history records.
* The answer is fixed for the rest of the execution: every later call with the same id returns
  the same value, so one id can guard several places of one change.

Once no execution that took the old branch is running, replace ``patched(ctx, id)`` (and the
old branch) by ``deprecate_patch(ctx, id)``: it records the marker for new executions (so
workers still running the ``patched`` code take the new branch for them) and accepts histories
with or without it. When no execution from before the deprecation runs any more, delete the
``deprecate_patch`` call: a replayed marker that no code asks for is ignored.

Markers carry no schedule event id, so adding a patch shifts no later command.
"""

from __future__ import annotations

from .commands import PatchMarkerCommand
from .context import Context
from .state import WorkflowState, state_of

#: Longest patch id (it is stored in every marker).
MAX_PATCH_ID_LENGTH = 255


def patched(ctx: Context, patch_id: str) -> bool:
    """Whether this execution runs the code guarded by patch ``patch_id`` (see the module)."""
    state = state_of(ctx)
    decided = state.patches.get(_checked(patch_id))
    if decided is not None:
        return decided
    if state.replaying:
        present = patch_id in state.replay_patches
        state.patches[patch_id] = present
        return present
    _record(state, patch_id, deprecated=False)
    return True


def deprecate_patch(ctx: Context, patch_id: str) -> None:
    """Patch ``patch_id`` is applied for good: its old branch is gone from the code (see the module)."""
    state = state_of(ctx)
    if _checked(patch_id) in state.patches:
        return
    if state.replaying:
        # With or without a marker in the history: both are the new branch. (A history from
        # before the patch took the old branch, and the command matching reports it.)
        state.patches[patch_id] = True
        return
    _record(state, patch_id, deprecated=True)


def _record(state: WorkflowState, patch_id: str, *, deprecated: bool) -> None:
    state.patches[patch_id] = True
    state.to_execute.append(PatchMarkerCommand(patch_id, deprecated=deprecated))


def _checked(patch_id: str) -> str:
    if not isinstance(patch_id, str) or not patch_id.strip():
        raise ValueError(f"a patch id must be a non-empty string, got {patch_id!r}")
    if len(patch_id) > MAX_PATCH_ID_LENGTH:
        raise ValueError(f"a patch id must be at most {MAX_PATCH_ID_LENGTH} characters, got {len(patch_id)}")
    return patch_id
