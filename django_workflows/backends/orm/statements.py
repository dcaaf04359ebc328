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

``{now}`` is ``Now()``; ``{stable_now}`` is the clock as of the statement's start, for conditions
that must drive an index range scan.

No value is ever formatted into the SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .transactions import DbNow

_SLOT = re.compile(r"%\((\w+)\)s|(\{now\}|\{stable_now\})")
#: The slot names ``{now}`` and ``{stable_now}`` compile to (not valid parameter names, so they
#: cannot collide with one).
_NOW_SLOT = "{now}"
_STABLE_NOW_SLOT = "{stable_now}"


@dataclass(frozen=True, slots=True)
class Now:
    """A statement value: the database's current time plus ``offset`` (``stable``: as of the
    statement's start, usable by an index range scan; see ``transactions.DbNow``)."""

    offset: timedelta = timedelta(0)
    stable: bool = False


class Dialect:
    """How one database alias spells placeholders and the database clock."""

    def __init__(self, connection: Any) -> None:
        self.vendor: str = connection.vendor
        self.placeholder = "?" if self.vendor == "sqlite" else "%s"
        self._connection = connection
        self._now: dict[tuple[float, bool], tuple[list[str], tuple[Any, ...]]] = {}

    def literal(self, text: str) -> str:
        """SQL text as the driver reads it: SQLite's driver does not unescape ``%%``."""
        return text.replace("%%", "%") if self.vendor == "sqlite" else text

    def now(self, value: Now) -> tuple[list[str], tuple[Any, ...]]:
        """``DbNow`` of ``value`` as (text pieces between its placeholders, its parameters)."""
        key = (value.offset.total_seconds(), value.stable)
        cached = self._now.get(key)
        if cached is None:
            sql, params = DbNow(value.offset, stable=value.stable).as_sql(None, self._connection)
            cached = self._now[key] = ([self.literal(piece) for piece in sql.split("%s")], tuple(params))
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
            parts.append((dialect.literal(text[position : match.start()]), match.group(1) or match.group(2)))
            position = match.end()
        self._parts = tuple(parts)
        self._tail = dialect.literal(text[position:])
        #: The parameter names the statement takes.
        self.names = frozenset(slot for _, slot in parts if slot not in (_NOW_SLOT, _STABLE_NOW_SLOT))

    def render(self, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The driver's SQL and positional parameters for ``values`` (one per name)."""
        sql: list[str] = []
        params: list[Any] = []
        for literal, slot in self._parts:
            sql.append(literal)
            if slot == _NOW_SLOT:
                self._render(_NOW, sql, params)
                continue
            if slot == _STABLE_NOW_SLOT:
                self._render(_STABLE_NOW, sql, params)
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
            pieces, now_params = self._dialect.now(value)
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
        elif value is None:
            # NULL in the text: the same value as a NULL parameter everywhere, but typed by its
            # context (PostgreSQL cannot type a bound NULL in `CASE WHEN $1 IS NULL ...`).
            sql.append("NULL")
        else:
            sql.append(self._dialect.placeholder)
            params.append(value)


_NOW = Now()
_STABLE_NOW = Now(stable=True)
