"""SessionManager: reaping idle model-inference sessions that each hold a GPU slot.

Every session takes one of two GPU slots when it is created and must give it back
exactly once, in its ``on_destroy`` hook, however it ends: closed, completed, idle
past its timeout, silent past its heartbeats, evicted, or shut down. Time is a
``ManualClock`` moved by hand, so the example runs instantly and prints the same
thing every time.

Run it with ``python examples/sessions.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import anyio
import anyio.lowlevel

from resilio import (
    DestroyHookFailed,
    Event,
    EventBus,
    ManualClock,
    Session,
    SessionCreated,
    SessionDestroyed,
    SessionExpired,
    SessionManager,
    SessionNotFound,
)

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events
# A failing hook is logged on the "resilio" logger; route it to your logs in a real
# service. Here the DestroyHookFailed event says it all.
logging.getLogger("resilio").addHandler(logging.NullHandler())


def now() -> str:
    return f"t={clock.monotonic():3g}s"


def show(event: Event) -> None:
    """The event stream, as a subscriber to ``Event`` sees it."""
    if isinstance(event, SessionCreated):
        fields = ""
    elif isinstance(event, SessionExpired):
        fields = f", reason {event.reason!r}, {event.late:g}s late"
    elif isinstance(event, SessionDestroyed):
        fields = f", reason {event.reason!r}"
    elif isinstance(event, DestroyHookFailed):
        fields = f", {event.error!r}"
    else:
        return
    print(f"    event [t={event.at:3g}s] {type(event).__name__}: {event.session_id}{fields}")


bus.subscribe(Event, show)


class GpuSlots:
    """A stand-in for a scarce resource: a slot must be given back exactly once."""

    def __init__(self, n: int) -> None:
        self.holder: dict[str, str | None] = {f"gpu{i}": None for i in range(n)}
        self.releases: dict[str, int] = {}  # session id -> times it released a slot

    def acquire(self, session_id: str) -> str:
        free = [slot for slot, holder in self.holder.items() if holder is None]
        if not free:
            raise RuntimeError("no free GPU slot")
        self.holder[free[0]] = session_id
        return free[0]

    def release(self, slot: str, session_id: str) -> None:
        if self.holder[slot] != session_id:
            raise RuntimeError(f"{slot} released twice")
        self.holder[slot] = None
        self.releases[session_id] = self.releases.get(session_id, 0) + 1

    def __repr__(self) -> str:
        return ", ".join(f"{slot}: {holder or 'free'}" for slot, holder in self.holder.items())


slots = GpuSlots(2)


def release_slot(session: Session) -> None:
    """The destroy hook every session gets: give its GPU slot back."""
    slots.release(session.data["slot"], session.id)


async def open_session(
    sessions: SessionManager,
    user: str,
    *,
    ttl: float | None = None,
    heartbeat: float | None = None,
    hooks: Sequence[Callable[[Session], object]] = (),
) -> Session:
    """Create a session, then take a slot for it; its last hook gives the slot back.

    In that order: with ``max_sessions`` equal to the number of slots, a create
    that finds the manager full evicts the least recently touched session first,
    and the evicted session's hook frees the slot this one takes.
    """
    session = await sessions.create(
        {"user": user},
        id=user,  # ids are random unless given; given here to print the same every run
        ttl=ttl,
        heartbeat=heartbeat,
        on_destroy=[*hooks, release_slot],
    )
    session.data["slot"] = slots.acquire(session.id)
    return session


async def advance(seconds: float) -> None:
    """Move the clock on, then let the manager's timer (and its hooks) run."""
    clock.advance(seconds)
    await anyio.wait_all_tasks_blocked()


async def idle_expiry(sessions: SessionManager) -> None:
    print("1. Idle sessions are reaped on time; a touch keeps one alive.")
    await open_session(sessions, "alice")
    bob = await open_session(sessions, "bob")
    print(f"  slots: {slots}; bob's deadline: t={bob.deadline:g}s")
    await advance(40)
    await sessions.touch("alice")  # alice sends a prompt: idle again from now
    print(f"  [{now()}] alice touched")
    await advance(20)  # t=60: bob has been idle for idle_timeout
    print(f"  slots: {slots}; {bob!r}, reason {bob.reason!r}")
    try:
        await sessions.get("bob")
    except SessionNotFound as exc:
        print(f"  get('bob'): {type(exc).__name__}: {exc}")


async def complete(sessions: SessionManager) -> None:
    print("2. complete(): the work is done, destroy now. A second call gets False.")
    print(f"  complete('alice') -> {await sessions.complete('alice')}")
    print(f"  complete('alice') -> {await sessions.complete('alice')}")
    print(f"  slots: {slots}")


async def races(sessions: SessionManager) -> None:
    print("3. Destroy racing expiry: the hooks run once, the loser gets False.")

    async def save_cache(session: Session) -> None:
        print(f"  [{now()}] saving {session.id}'s KV cache...")
        await clock.sleep_async(2)  # slow, so it is async: it must not block the loop
        print(f"  [{now()}] ...saved")

    carol = await open_session(sessions, "carol", ttl=10, hooks=[save_cache])
    await advance(10)  # carol's deadline: the expiry claims her and starts her hooks
    print(f"  the expiry won: {carol!r}, destroy('carol') -> {await sessions.destroy('carol')}")
    await advance(2)
    print(f"  {carol!r}; slots: {slots}; carol released {slots.releases['carol']} slot")

    await open_session(sessions, "dave")
    results: dict[str, bool] = {}

    async def end(name: str, ending: Callable[[str], Awaitable[bool]]) -> None:
        results[name] = await ending("dave")

    async with anyio.create_task_group() as tasks:  # two tasks end dave at once
        tasks.start_soon(end, "complete", sessions.complete)
        tasks.start_soon(end, "destroy", sessions.destroy)
    print(f"  {results}; dave released {slots.releases['dave']} slot")


async def heartbeat(sessions: SessionManager) -> None:
    print("4. A heartbeat session ends after 3 missed beats (reason 'heartbeat').")
    await open_session(sessions, "erin", heartbeat=5)  # a beat every 5 s, 3 may be missed
    for _ in range(2):
        await advance(5)
        await sessions.heartbeat("erin")
        print(f"  [{now()}] beat")
    await advance(15)  # the client went away: 3 intervals without a beat


async def failing_hook(sessions: SessionManager) -> None:
    print("5. A hook that raises: DestroyHookFailed, and the next hook still runs.")

    def report_usage(session: Session) -> None:
        raise ConnectionError("billing is down")

    await open_session(sessions, "frank", hooks=[report_usage])
    print(f"  destroy('frank') -> {await sessions.destroy('frank')}; slots: {slots}")


async def eviction(sessions: SessionManager) -> None:
    print("6. max_sessions=2: one more evicts the least recently touched.")
    await open_session(sessions, "grace")
    await open_session(sessions, "heidi")
    await advance(1)
    await sessions.touch("grace")  # heidi is now the least recently touched
    await open_session(sessions, "ivan")
    print(f"  slots: {slots}; live: {len(sessions)}")


async def destroy_many(sessions: SessionManager) -> None:
    print("7. destroy_many(): hooks of several sessions in flight at once.")

    async def audit(session: Session) -> None:  # a manager-wide listener
        print(f"  audit {session.id}: start")
        await anyio.lowlevel.checkpoint()  # stands in for an async write
        print(f"  audit {session.id}: end")

    remove = sessions.on_destroy(audit)
    count = await sessions.destroy_many(["grace", "ivan", "nobody"], concurrency=2)
    remove()  # takes away this registration of audit
    remove()  # and a second call does nothing
    print(f"  destroyed {count} (unknown ids are skipped); slots: {slots}")


# --8<-- [start:get-or-create]
async def get_or_create(sessions: SessionManager) -> None:
    print("8. get_or_create(): three requests for one user at once make one session.")
    loads = 0

    async def load_model() -> dict[str, str]:  # runs only when a session is made
        nonlocal loads
        loads += 1
        await anyio.lowlevel.checkpoint()  # stands in for loading the weights
        return {"user": "oscar", "slot": slots.acquire("oscar")}

    got: list[Session] = []

    async def request() -> None:  # a request handler
        session = await sessions.get_or_create("oscar", load_model, on_destroy=release_slot)
        got.append(session)

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(request)
    same = all(session is got[0] for session in got)
    print(f"  model loaded {loads} time; one session for all three: {same}; slots: {slots}")
    await sessions.complete("oscar")
    # --8<-- [end:get-or-create]


async def main() -> None:
    async with SessionManager(
        idle_timeout=timedelta(minutes=1), max_sessions=2, name="models", clock=clock, bus=bus
    ) as sessions:
        await idle_expiry(sessions)
        await complete(sessions)
        await races(sessions)
        await heartbeat(sessions)
        await failing_hook(sessions)
        await eviction(sessions)
        await destroy_many(sessions)
        await get_or_create(sessions)
        print("9. Leaving the block destroys the rest (reason 'shutdown').")
        await open_session(sessions, "judy")
        await open_session(sessions, "mallory")
    print(f"  slots: {slots}")
    once = all(count == 1 for count in slots.releases.values())
    print(f"  {len(slots.releases)} sessions, each released its slot exactly once: {once}")


if __name__ == "__main__":
    anyio.run(main, backend="asyncio")
