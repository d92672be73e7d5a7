"""Database access: one engine per process, SQLite (embedded default) or PostgreSQL (production).

Each service declares its own tables on its own ``MetaData``, with names prefixed by the service name;
no service reads another's. Two column types keep money and time honest on both databases:
``Amount`` stores a ``Decimal`` exactly (SQLite has no decimal type and would go through float), and
``UtcTimestamp`` always gives back an aware UTC datetime (SQLite would hand back a naive one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from psycopg.rows import namedtuple_row
from sqlalchemy import Dialect, Numeric, String, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Engine, Result, RootTransaction, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import DateTime, TypeDecorator


class Amount(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC(20, 6) on PostgreSQL, text on SQLite."""

    impl = Numeric(20, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(20, 6, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        decimal = Decimal(value)
        return format(decimal, "f") if dialect.name == "sqlite" else decimal

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)) if dialect.name == "sqlite" else Decimal(value)


def require_aware(value: Any) -> datetime:
    """``value`` if it is a timezone-aware datetime; a naive one would be stored as some other moment."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TypeError("timestamps must be timezone-aware datetimes")
    return value


class UtcTimestamp(TypeDecorator[datetime]):
    """A timezone-aware instant, stored as UTC, returned as an aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = require_aware(value).astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def insert_on_conflict(where: Session | str, table: Table) -> Any:
    """An INSERT into ``table`` that can say what a duplicate key does (``.on_conflict_do_nothing`` to
    ignore it, ``.on_conflict_do_update`` to merge): PostgreSQL's or SQLite's, which spell it alike.
    ``where`` is the session it will run in, or the dialect's name (for statements built once per dialect)."""
    dialect = where if isinstance(where, str) else dialect_name(where)
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


_REPEATABLE_READ_ONLY = text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


class Database:
    """An engine and a session factory; ``transaction()`` is the unit of work."""

    def __init__(self, url: str, *, pool_size: int = 20, echo: bool = False, schema: str | None = None) -> None:
        self.url = normalise_url(url)
        self.schema = schema
        self.dialect = make_url(self.url).get_backend_name()
        self.engine = self._create_engine(pool_size, echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def _create_engine(self, pool_size: int, echo: bool) -> Engine:
        if self.dialect == "sqlite":
            return self._sqlite_engine(echo)
        connect_args = {"options": f"-c search_path={self.schema}"} if self.schema else {}
        return create_engine(
            self.url,
            echo=echo,
            connect_args=connect_args,
            pool_size=pool_size,
            max_overflow=pool_size,
            # No pre-ping: it costs a round trip per transaction. A connection that died is
            # discarded when it fails, and the handler that hit it is retried by the bus.
            pool_recycle=1800,
        )

    def _sqlite_engine(self, echo: bool) -> Engine:
        database = make_url(self.url).database
        in_memory = database in (None, "", ":memory:")
        engine = create_engine(
            self.url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide where transactions begin (see _on_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Take the write lock up front: a deferred transaction that later writes can fail with
            # "database is locked" without waiting, where an immediate one waits its turn.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a transaction that commits on success and rolls back on any exception."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def connection_transaction(self) -> Iterator[ConnectionTransaction]:
        """A transaction like ``transaction()``'s, on a Core connection, with a Session over it only if
        asked for (``ConnectionTransaction``): for a delivery whose handler may never touch one.
        PostgreSQL (on SQLite a Core transaction begins with the write lock; see ``_on_begin``)."""
        unit = ConnectionTransaction(self.engine, self._sessions)
        try:
            yield unit
            unit.commit()
        except BaseException:
            unit.rollback()
            raise
        finally:
            unit.close()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only transaction whose statements all see the database as of its first one.

        A plain transaction on PostgreSQL reads committed data statement by statement, so a report
        made of several queries (counts here, sums there) can mix moments while other processes
        commit. SQLite needs nothing more: a transaction there already holds the database still.
        """
        with self._sessions.begin() as session:
            if self.is_postgres:
                session.execute(_REPEATABLE_READ_ONLY)
            yield session

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (``Session.execute`` is typed as returning a plain
    Result; for those statements it is a CursorResult, which counts them)."""
    return cast("CursorResult[Any]", result).rowcount


class ConnectionTransaction:
    """One transaction: a pooled connection checked out when first used (``connection``), and a
    Session over it only when first asked for (``session``), which then commits or rolls back the
    whole transaction as a ``Database.transaction()`` session would (its after-commit hooks included).

    A Session costs as much CPU per transaction as the statement every delivery runs (callgrind: an
    empty Session transaction about 240k instructions, the inbox claim on the driver about 170k): a
    delivery whose handler never touches one (the claim is the transaction's only statement) pays for
    the Core connection alone."""

    def __init__(self, engine: Engine, sessions: sessionmaker[Session]) -> None:
        self._engine = engine
        self._sessions = sessions
        self._connection: Connection | None = None
        self._transaction: RootTransaction | None = None
        self._session: Session | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
            self._transaction = self._connection.begin()
        return self._connection

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self._sessions(bind=self.connection, join_transaction_mode="control_fully")
        return self._session

    def commit(self) -> None:
        if self._session is not None:
            self._session.commit()  # flushes; commits the connection's transaction if it joined it
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.commit()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        if self._connection is not None:
            self._connection.close()


def dialect_name(where: Session | Connection) -> str:
    """The database of ``where``'s transaction: a Session, or a Core connection (``ctx.writer``)."""
    return where.dialect.name if isinstance(where, Connection) else where.get_bind().dialect.name


def first_row_on_driver(
    where: Session | Connection, statement: str, parameters: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """Run ``statement`` (plain SQL in the driver's ``%(name)s`` style) in the transaction of ``where``
    (a session or a connection), on its own connection, and return its first row: for the statement
    every delivery runs (the inbox look-up and claim), where SQLAlchemy's execution layer costs about
    as much CPU as the driver's round trip itself. A driver error comes out as SQLAlchemy's (an
    ``IntegrityError`` stays one); a connection found dead fails the rollback that follows, so the pool
    discards it."""
    row = _on_driver(where, statement, parameters, lambda cursor: cursor.fetchone(), row_factory=None)
    return None if row is None else tuple(row)


def rows_on_driver(where: Session | Connection, statement: str, parameters: Mapping[str, Any]) -> list[Any]:
    """Every row of ``statement``, run as ``first_row_on_driver`` runs it, as named tuples (psycopg's
    ``namedtuple_row``): for the relay's passes and the invoicer's one read, where SQLAlchemy's result
    and row objects cost more CPU than the round trip. A statement without rows gives ``[]``."""
    rows = _on_driver(where, statement, parameters, lambda cursor: cursor.fetchall(), row_factory=namedtuple_row)
    return list(rows or [])


def _on_driver(
    where: Session | Connection,
    statement: str,
    parameters: Mapping[str, Any],
    fetch: Callable[[Any], Any],
    *,
    row_factory: Any,
) -> Any:
    connection = where if isinstance(where, Connection) else where.connection()
    dbapi_connection: Any = connection.connection.dbapi_connection
    assert dbapi_connection is not None  # a connection the session just checked out
    cursor = dbapi_connection.cursor() if row_factory is None else dbapi_connection.cursor(row_factory=row_factory)
    try:
        cursor.execute(statement, parameters)
        return fetch(cursor) if cursor.description is not None else None
    except Exception as exc:
        dialect = connection.dialect
        if not isinstance(exc, dialect.loaded_dbapi.Error):
            raise
        raise DBAPIError.instance(statement, parameters, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
    finally:
        cursor.close()
