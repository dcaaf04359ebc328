"""Statements with named parameters for the ORM backend's precompiled SQL (``sql.HotSql``).

A statement is written once, with ``%(name)s`` placeholders and ``{now}`` for the database clock,
and run with keyword arguments, so that its values cannot be bound in the wrong order. The text
is split once per database alias; running it renders the driver's own positional placeholders
(``%s``, or ``?`` on SQLite), so the driver binds exactly as it would for Django's cursor.

Values render by their type:

* a plain value is one placeholder;
* a ``list`` is its items separated by commas (``IN (%(ids)s)``); a ``tuple`` is its items in
  parentheses, so a list of tuples is the row groups of a multi-row ``VALUES %(rows)s``;
* ``Now(offset)`` is the database's clock plus ``offset`` (``transactions.DbNow``), so a lease
  time is computed by the database even inside a row of an INSERT.

No value is ever formatted into the SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .transactions import DbNow

_SLOT = re.compile(r"%\((\w+)\)s|\{now\}")
#: The slot name ``{now}`` compiles to (not a valid parameter name, so it cannot collide).
_NOW_SLOT = "{now}"


@dataclass(frozen=True, slots=True)
class Now:
    """A statement value: the database's current time plus ``offset``."""

    offset: timedelta = timedelta(0)


class Dialect:
    """How one database alias spells placeholders and the database clock."""

    def __init__(self, connection: Any) -> None:
        self.vendor: str = connection.vendor
        self.placeholder = "?" if self.vendor == "sqlite" else "%s"
        self._connection = connection
        self._now: dict[float, tuple[list[str], tuple[Any, ...]]] = {}

    def literal(self, text: str) -> str:
        """SQL text as the driver reads it: SQLite's driver does not unescape ``%%``."""
        return text.replace("%%", "%") if self.vendor == "sqlite" else text

    def now(self, offset: timedelta) -> tuple[list[str], tuple[Any, ...]]:
        """``DbNow(offset)`` as (text pieces between its placeholders, its parameters)."""
        seconds = offset.total_seconds()
        cached = self._now.get(seconds)
        if cached is None:
            sql, params = DbNow(offset).as_sql(None, self._connection)
            cached = self._now[seconds] = ([self.literal(piece) for piece in sql.split("%s")], tuple(params))
        return cached


class Statement:
    """One SQL statement with named parameters, compiled for one ``Dialect``."""

    __slots__ = ("name", "_dialect", "_parts", "_tail", "names")

    def __init__(self, name: str, text: str, dialect: Dialect) -> None:
        self.name = name
        self._dialect = dialect
        parts: list[tuple[str, str]] = []
        position = 0
        for match in _SLOT.finditer(text):
            parts.append((dialect.literal(text[position : match.start()]), match.group(1) or _NOW_SLOT))
            position = match.end()
        self._parts = tuple(parts)
        self._tail = dialect.literal(text[position:])
        #: The parameter names the statement takes.
        self.names = frozenset(slot for _, slot in parts if slot != _NOW_SLOT)

    def render(self, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The driver's SQL and positional parameters for ``values`` (one per name)."""
        sql: list[str] = []
        params: list[Any] = []
        for literal, slot in self._parts:
            sql.append(literal)
            if slot == _NOW_SLOT:
                self._render(Now(), sql, params)
                continue
            try:
                value = values[slot]
            except KeyError:
                raise TypeError(f"statement {self.name} needs the parameter {slot!r}") from None
            self._render(value, sql, params)
        sql.append(self._tail)
        return "".join(sql), params

    def _render(self, value: Any, sql: list[str], params: list[Any]) -> None:
        if isinstance(value, Now):
            pieces, now_params = self._dialect.now(value.offset)
            sql.append(pieces[0])
            for piece in pieces[1:]:
                sql.append(self._dialect.placeholder)
                sql.append(piece)
            params.extend(now_params)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if index:
                    sql.append(", ")
                self._render(item, sql, params)
        elif isinstance(value, tuple):
            sql.append("(")
            for index, item in enumerate(value):
                if index:
                    sql.append(", ")
                self._render(item, sql, params)
            sql.append(")")
        else:
            sql.append(self._dialect.placeholder)
            params.append(value)
