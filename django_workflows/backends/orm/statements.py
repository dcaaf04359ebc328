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
from datetime import date, datetime, timedelta
from decimal import Decimal
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
        self._now_text: dict[tuple[float, bool], tuple[str, tuple[Any, ...]]] = {}
        #: The text of a row of plain values, by the types of its items (``_render``).
        self.row_texts: dict[tuple[type, ...], str] = {}

    def literal(self, text: str) -> str:
        """SQL text as the driver reads it: SQLite's driver does not unescape ``%%``."""
        return text.replace("%%", "%") if self.vendor == "sqlite" else text

    def now_text(self, value: Now) -> tuple[str, tuple[Any, ...]]:
        """``DbNow`` of ``value`` as the driver's SQL text and its parameters."""
        key = (value.offset.total_seconds(), value.stable)
        cached = self._now_text.get(key)
        if cached is None:
            pieces, params = self.now(value)
            cached = self._now_text[key] = (self.placeholder.join(pieces), params)
        return cached

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
        dialect = self._dialect
        for literal, slot in self._parts:
            sql.append(literal)
            if slot == _NOW_SLOT:
                value: Any = _NOW
            elif slot == _STABLE_NOW_SLOT:
                value = _STABLE_NOW
            else:
                try:
                    value = values[slot]
                except KeyError:
                    raise TypeError(f"statement {self.name} needs the parameter {slot!r}") from None
            if value.__class__ is list:
                # Multi-row VALUES and IN lists: the hot cases. An IN list of plain values is
                # its placeholders; rows are rendered a row at a time.
                if _SCALARS.issuperset(map(type, value)):
                    sql.append(", ".join([dialect.placeholder] * len(value)))
                    params.extend(value)
                else:
                    sql.append(", ".join([_render(dialect, item, params) for item in value]))
            else:
                sql.append(_render(dialect, value, params))
        sql.append(self._tail)
        return "".join(sql), params


def _render(dialect: Dialect, value: Any, params: list[Any]) -> str:
    """The SQL text of one value, its parameters appended to ``params``."""
    if isinstance(value, tuple):
        # A row. Rows of plain values and NULLs (most of them) get their text from a cache by
        # the types of their items, so that rendering one costs no Python call per item.
        types = tuple(map(type, value))
        text = dialect.row_texts.get(types)
        if text is not None:
            params.extend([item for item in value if item is not None])
            return text
        if _PLAIN.issuperset(types) and len(dialect.row_texts) < _MAX_ROW_TEXTS:
            text = dialect.row_texts[types] = "(" + ", ".join(
                "NULL" if kind is _NONE else dialect.placeholder for kind in types
            ) + ")"
            params.extend([item for item in value if item is not None])
            return text
        return "(" + ", ".join([_render(dialect, item, params) for item in value]) + ")"
    if isinstance(value, Now):
        text, now_params = dialect.now_text(value)
        params.extend(now_params)
        return text
    if isinstance(value, list):
        return ", ".join([_render(dialect, item, params) for item in value])
    if value is None:
        # NULL in the text: the same value as a NULL parameter everywhere, but typed by its
        # context (PostgreSQL cannot type a bound NULL in `CASE WHEN $1 IS NULL ...`).
        return "NULL"
    params.append(value)
    return dialect.placeholder


_NONE = type(None)
#: Types that are one placeholder each, checked by exact type; in a row, NULL too.
_SCALARS = frozenset({str, int, float, bool, bytes, datetime, date, Decimal})
_PLAIN = _SCALARS | {_NONE}
#: Row texts a dialect keeps (there are as many as patterns of NULL columns per statement: few).
_MAX_ROW_TEXTS = 1024
_NOW = Now()
_STABLE_NOW = Now(stable=True)
