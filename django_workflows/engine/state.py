"""The in-memory state of one executing workflow (port of go-workflows
``internal/workflowstate``): the coroutine scheduler, the root context, the commands in
flight, signal channels, workflow time and the replay flag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .commands import Command, CommandState
from .context import Context, root_context
from .converter import Converter, Payload
from .core import Metadata, WorkflowInstance
from .coroutines import Scheduler
from .errors import WorkflowError
from .futures import Channel
from .payloads import PayloadLimits
from .propagation import ContextPropagator
from .registry import Registry


class WorkflowState:
    def __init__(
        self,
        *,
        instance: WorkflowInstance,
        converter: Converter,
        registry: Registry,
        logger: logging.Logger,
        propagators: Sequence[ContextPropagator] = (),
        time: datetime,
        payload_limits: PayloadLimits | None = None,
    ) -> None:
        self.instance = instance
        self.name = ""
        self.queue = ""
        self.metadata: Metadata = {}
        #: Seconds from the start event (continue-as-new passes it on); None: no limit.
        self.execution_timeout: float | None = None
        self.converter = converter
        #: Checked on every payload the code produces (None: no limits, as in the tester).
        self.payload_limits = payload_limits
        self.registry = registry
        self.base_logger = logger
        self.propagators = list(propagators)
        self.time = time
        self.replaying = False
        #: Schedule the first attempt of ``with_retries`` from its retry coroutine, as
        #: django_workflows did before it followed go-workflows; set by the executor for an
        #: execution whose history was recorded that way (see ``engine.retries``).
        self.legacy_retry_order = False
        self.history_length = 0
        self.scheduler = Scheduler()
        self.root, self.root_cancel = root_context(self)
        self.never_done: Channel[None] = Channel()
        self.commands: dict[int, Command] = {}
        self.to_execute: list[Command] = []
        self._next_id = 1
        self.signal_channels: dict[str, Channel[Any]] = {}
        self.pending_signals: dict[str, list[Payload | None]] = {}
        #: Patch ids this execution has decided (``engine.versioning``): True = patched branch.
        self.patches: dict[str, bool] = {}
        #: While replaying: the patch ids whose markers the history records in the task being
        #: replayed (what ``patched`` answers from).
        self.replay_patches: frozenset[str] = frozenset()
        #: The error of a coroutine that raised something other than a WorkflowError.
        self.panic: BaseException | None = None
        #: An error that ends the execution whatever the code does next (a side effect whose
        #: result is over the payload limit: no replay could reproduce what the code saw).
        self.failure: WorkflowError | None = None
        self.panic_coroutine = ""

    # -- commands ----------------------------------------------------------------------------

    def next_schedule_event_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def add_command(self, command: Command) -> None:
        self.commands[command.id] = command
        self.to_execute.append(command)

    def requeue(self, command: Command) -> None:
        """A committed command changed state (canceled) and must produce events again."""
        if command not in self.to_execute:
            self.to_execute.append(command)

    def pending_futures(self) -> list[str]:
        names = []
        for command in self.commands.values():
            future = command.future
            if future is None or future.ready() or command.state is CommandState.CANCELED:
                continue
            name = command.pending_future_name()
            if name:
                names.append(name)
        return sorted(names)

    # -- signals -----------------------------------------------------------------------------

    def signal_channel(self, name: str) -> Channel[Any]:
        channel = self.signal_channels.get(name)
        if channel is None:
            channel = Channel(capacity=None)
            # Signals that arrived before the channel existed, in arrival order (go-workflows
            # replays them newest first).
            for payload in self.pending_signals.pop(name, []):
                channel.send_nonblocking(self.decode(payload))
            self.signal_channels[name] = channel
        return channel

    def deliver_signal(self, name: str, payload: Payload | None) -> None:
        channel = self.signal_channels.get(name)
        if channel is None:
            self.pending_signals.setdefault(name, []).append(payload)
        else:
            channel.send_nonblocking(self.decode(payload))

    # -- payloads ----------------------------------------------------------------------------

    def decode(self, payload: Payload | None) -> Any:
        return None if payload is None else self.converter.from_payload(payload)

    def encode(self, value: Any, kind: str = "") -> Payload:
        """``value`` as a payload; a ``kind`` (``"activity input"``) checks its size against the
        payload limits (``PayloadTooLarge``). A replay checks too, without warning again: the
        code must meet the same refusal it met when the history was recorded, or it would
        expect a command the history does not have."""
        payload = self.converter.to_payload(value)
        if kind and self.payload_limits is not None:
            where = f"in workflow {self.name} (instance {self.instance})"
            self.payload_limits.check(payload, kind, where, warn=not self.replaying)
        return payload


def state_of(ctx: Context) -> WorkflowState:
    if not isinstance(ctx, Context):
        raise TypeError(f"expected a workflow.Context as first argument, got {type(ctx).__name__}")
    return ctx._state
