"""Sessions that hold real HTTP clients: one per user, closed however the session ends.

The part between the ``--8<--`` markers is what a service would write: a session per
user holding that user's ``httpx.AsyncClient``, made once however many requests ask
for it at the same moment, and closed by its ``on_destroy`` hook when the user logs
out, after five idle minutes, or when the manager shuts down. The rest is scaffolding:
a profile API served on 127.0.0.1 by the example itself, and three requests from two
users.

Run it with ``python examples/http_sessions.py`` (it needs httpx).
"""

# --8<-- [start:use]
import httpx

from resilio import Session, SessionManager

Sessions = SessionManager[httpx.AsyncClient]


async def close_client(session: Session[httpx.AsyncClient]) -> None:
    await session.data.aclose()  # runs exactly once, however the session ends


async def profile(sessions: Sessions, user: str, api: str) -> object:
    # The live session (touched), or a new one made once for all callers.
    session = await sessions.get_or_create(
        user,
        lambda: httpx.AsyncClient(base_url=api, headers={"X-User": user}),
        on_destroy=close_client,
    )
    response = await session.data.get("/profile")
    response.raise_for_status()
    return response.json()


async def serve(api: str) -> None:
    async with Sessions(idle_timeout=300.0) as sessions:
        for user in ["ada", "bob", "ada"]:  # requests from the handlers
            print(user, await profile(sessions, user, api))
        await sessions.destroy("bob", reason="logged out")
    # leaving the block destroyed the other sessions: every client is closed
    # --8<-- [end:use]


def main() -> None:
    """Serve three requests from two users against the example's own server."""
    import anyio
    from _loopback import Reply, Request, loopback

    from resilio import SessionCreated, SessionDestroyed, default_bus

    def answer(request: Request) -> Reply:
        return 200, {"user": request.headers["X-User"], "plan": "pro"}

    def on_created(event: SessionCreated) -> None:
        print(f"  session {event.session_id!r} created, with a client of its own")

    def on_destroyed(event: SessionDestroyed) -> None:
        print(f"  session {event.session_id!r} destroyed ({event.reason})")

    default_bus().subscribe(SessionCreated, on_created)
    default_bus().subscribe(SessionDestroyed, on_destroyed)
    with loopback(answer) as api:
        anyio.run(serve, api)


if __name__ == "__main__":
    main()
