"""``ContinueAsNew`` (port of go-workflows ``workflow/continueasnew.go``).

Raising ``ContinueAsNew(*args)`` ends the current execution and starts a new one of the same
workflow with a fresh history, the same instance id and the given arguments. It keeps the
history of long-running loops small. It derives from ``BaseException`` so that an ``except
Exception`` in workflow code does not swallow it.
"""

from __future__ import annotations

from typing import Any


class ContinueAsNew(BaseException):
    def __init__(self, *args: Any, result: Any = None) -> None:
        super().__init__(*args)
        self.inputs = args
        #: The result of the execution that continues as new (``None`` unless given).
        self.result = result
