"""Identity and state of workflow instances (port of go-workflows ``core/``).

An *instance* is named by the user (``instance_id``); every run of it is an *execution* with its
own ``execution_id``. ``ContinueAsNew`` keeps the instance id and starts a new execution.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from .clock import to_timedelta

#: Arbitrary string metadata carried with an instance (context propagation, tracing).
Metadata = dict[str, str]

#: The queue new workflows land on when none is given.
DEFAULT_QUEUE = "default"
#: The queue of the engine's own activities and workflows; every worker polls it.
SYSTEM_QUEUE = "_system_"

_MAX_ID_LENGTH = 128
# Printable characters only; braces and colons are excluded because the Redis backend builds
# keys and hash tags from ids.
_ID_RE = re.compile(r"^[^\x00-\x1f\x7f{}:]+$")
# Signal names are never part of a key, so braces and colons are fine; they are names, not data,
# hence the bound (a payload passed as the name by mistake fails loudly).
_MAX_SIGNAL_NAME_LENGTH = 255
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class InstanceState(enum.IntEnum):
    """Lifecycle of one execution (go-workflows ``core.WorkflowInstanceState``)."""

    ACTIVE = 0
    CONTINUED_AS_NEW = 1
    FINISHED = 2

    @property
    def label(self) -> str:
        return {0: "Active", 1: "ContinuedAsNew", 2: "Finished"}[self.value]


@dataclass(frozen=True, slots=True)
class WorkflowInstance:
    """One execution of a workflow instance, optionally the child of another execution.

    Two values compare equal when they name the same execution; the parent link is carried
    along but is not part of the identity.
    """

    instance_id: str
    execution_id: str
    parent: WorkflowInstance | None = field(default=None, compare=False)
    #: The schedule event id of the ``SubWorkflowScheduled`` event in the parent's history.
    parent_event_id: int = field(default=0, compare=False)

    @property
    def is_sub_workflow(self) -> bool:
        return self.parent is not None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"instance_id": self.instance_id, "execution_id": self.execution_id}
        if self.parent is not None:
            data["parent"] = self.parent.to_dict()
            data["parent_event_id"] = self.parent_event_id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> WorkflowInstance:
        parent = data.get("parent")
        return cls(
            instance_id=str(data["instance_id"]),
            execution_id=str(data["execution_id"]),
            parent=cls.from_dict(parent) if isinstance(parent, dict) else None,
            parent_event_id=int(data.get("parent_event_id", 0) or 0),  # type: ignore[call-overload]
        )

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.execution_id})"


def new_execution_id() -> str:
    return uuid.uuid4().hex


def validate_id(value: object, what: str = "instance id") -> str:
    """Return ``value`` if it is a usable instance id or queue name, else raise ``ValueError``.

    The same rule holds on every backend, so an id that works on SQLite also works on Redis.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > _MAX_ID_LENGTH:
        raise ValueError(f"{what} must be at most {_MAX_ID_LENGTH} characters, got {len(value)}")
    if not _ID_RE.match(value):
        raise ValueError(f"{what} {value!r} contains a control character, '{{', '}}' or ':'")
    return value


def validate_signal_name(value: object) -> str:
    """Return ``value`` if it is a usable signal name, else raise ``ValueError``.

    One rule for every sender and receiver: the Client, the ``signal_workflow`` shortcut,
    ``workflow.signal_workflow``, ``workflow.new_signal_channel``, the admin's signal action and
    ``manage.py workflows signal`` (through the Client).
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"signal name must be a non-empty string, got {value!r}")
    if value.isspace():
        raise ValueError(f"signal name must not be blank, got {value!r}")
    if len(value) > _MAX_SIGNAL_NAME_LENGTH:
        raise ValueError(f"signal name must be at most {_MAX_SIGNAL_NAME_LENGTH} characters, got {len(value)}")
    if _CONTROL_RE.search(value):
        raise ValueError(f"signal name {value!r} contains a control character")
    return value


def check_start_options(options: object, owner: str) -> None:
    """Normalize ``execution_timeout`` and ``start_delay`` of a frozen options dataclass to
    ``timedelta`` (``None`` stays: no timeout, no delay); a value must be positive."""
    for name in ("execution_timeout", "start_delay"):
        value = getattr(options, name)
        if value is None:
            continue
        delta = to_timedelta(value, what=f"{owner}.{name}")
        if delta <= timedelta(0):
            raise ValueError(f"{owner}.{name} must be positive (or None), got {value!r}")
        object.__setattr__(options, name, delta)
