"""Type checks for the session manager; checked by `mypy --strict tests/typing`, never run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from typing_extensions import assert_type

from resilio import Session, SessionManager, SessionStats


class Conn:
    """Stands in for what a session holds."""


async def open_conn() -> Conn:
    return Conn()


def on_close(session: Session[Conn]) -> None:
    assert_type(session.data, Conn)


def on_any(session: Session) -> None:
    """A hook written for a bare Session suits a manager of any data."""


async def check_typed() -> None:
    async with SessionManager[dict[str, int]](idle_timeout=60) as sessions:
        assert_type(sessions, SessionManager[dict[str, int]])
        session = await sessions.create({"hits": 0}, on_destroy=on_any)
        assert_type(session, Session[dict[str, int]])
        assert_type(session.data, dict[str, int])
        assert_type((await sessions.get(session.id)).data, dict[str, int])
        assert_type((await sessions.touch(session.id)).data, dict[str, int])
        assert_type(await sessions.get_or_create("alice", dict), Session[dict[str, int]])
        await sessions.create("not a dict")  # type: ignore[arg-type]
        await sessions.create()  # type: ignore[call-arg]
        await sessions.get_or_create("bob")  # type: ignore[call-overload]


async def check_annotated(sessions: SessionManager[Conn]) -> None:
    conn = await sessions.get_or_create("alice", open_conn, on_destroy=on_close)
    assert_type(conn, Session[Conn])
    assert_type(conn.data, Conn)
    sessions.on_destroy(on_close)
    annotated: SessionManager[Conn] = SessionManager(idle_timeout=60)
    assert_type(annotated, SessionManager[Conn])


async def check_optional() -> None:
    async with SessionManager[Conn | None]() as sessions:
        assert_type((await sessions.create()).data, Conn | None)
        assert_type((await sessions.get_or_create("x")).data, Conn | None)


async def check_bare() -> None:
    """A manager built without saying holds Any, as before."""
    async with SessionManager() as sessions:
        assert_type(sessions, SessionManager[Any])
        session = await sessions.create()
        assert_type(session, Session[Any])
        assert_type(session.data, Any)
        assert_type(await sessions.create({"anything": 1}), Session[Any])
        assert_type(await sessions.get_or_create("key"), Session[Any])
        assert_type(await sessions.get_or_create("conn", open_conn), Session[Any])


def check_stats(sessions: SessionManager[int]) -> None:
    """Counters: ints, a read-only mapping of reasons, seconds as a float."""
    stats = sessions.stats()
    assert_type(stats, SessionStats)
    assert_type(stats.created, int)
    assert_type(stats.destroyed, Mapping[str, int])
    assert_type(stats.destroyed["expired"], int)
    assert_type(stats.lateness_max, float)
    stats.destroyed["expired"] = 1  # type: ignore[index]
