"""The four ways to guard a call, written once.

A primitive that guards calls implements a small permission protocol:

* ``_acquire()`` takes a permit and returns a token, or raises a
  [`RejectedError`][resilio.RejectedError]; it may block the thread when the primitive waits
  (a rate limiter). ``_acquire_async()`` is its awaitable twin, used only when the
  class sets ``_acquire_waits = True``; otherwise async callers use ``_acquire()``,
  which then never blocks.
* ``_on_success(token)`` and ``_on_error(token, exc)`` record the outcome; the
  primitive classifies ``exc`` (an `Exception`) itself, and ``_on_error`` returns
  how it counted it: ``"succeeded"``, ``"failed"`` or ``"ignored"``.
* ``_release(token)`` gives the permit back without an outcome. The guard calls it
  when the call was cancelled or interrupted: any `BaseException` that is not
  an `Exception` (asyncio and trio cancellation, ``KeyboardInterrupt``,
  ``GeneratorExit``, ``SystemExit``) counts neither as success nor as failure.
  It does so on the free path too, with no permit to give back, so that the
  primitive counts the call as ignored.
* ``_outcomes = False`` says the primitive cares about admission only (a rate
  limiter): the guard then calls ``_acquire()`` / ``_acquire_async()`` and nothing
  else, and keeps no token for ``with`` blocks.
* ``_free`` is a token, or ``None``. A token there means "admission needs no permit
  right now" (a closed breaker), so the hot path skips ``_acquire()``. When the
  guard's ``_free_success`` is false (a class attribute, or a slot, which reads
  faster, as breakers keep it) a success on that path changes nothing
  (a closed breaker with a clean record) and is not reported either, unless
  ``_free`` changed while the call ran; the guard then only counts it, with one
  ``next()`` on the guard's ``_succeeded`` (a counter, see ``_counters.counter``).
* ``_timed_free`` is like ``_free`` for a guard that times its calls
  (``_timed = True``, a breaker measuring slow calls): the decorator pairs it with
  the start time on ``_now()``, ``(token, start)``, the token ``_acquire()``
  returns for such a guard, and reports its success to ``_on_timed_success``.
  The other forms take that token from ``_acquire()``.
* ``_refused_until`` is 0, or a time on the clock ``_now()`` before which calls
  are refused without a permit (an open breaker). The decorator checks it when
  ``_free`` is ``None`` and raises ``_refused_type(_name, retry_after,
  _last_failure)`` from its own frame (every frame an exception crosses costs as
  much as raising it), after calling ``_announce_refusal(now, retry_after)``
  unless the routing table of the guard's ``_bus`` is ``_unheard``, one it found
  to send `CallRejected` nowhere (the bus replaces its table on every change,
  never edits it). Past that time, in instant mode (``resilio._instant.SWITCH``,
  read only then), and in the other forms, ``_acquire()`` decides.
* ``_failure_if`` is ``None``, or a predicate on results (a breaker's
  ``failure_if``): the decorator, in a variant chosen when it wraps, and
  ``call`` / ``call_async`` then hand each result to ``_on_result(token,
  result)`` instead of ``_on_success(token)``, and the primitive judges it.
  ``with`` blocks have no result and report successes as ever. ``_on_result``
  returns how it counted the result, as ``_on_error`` does.
* ``_untimed`` is a routing table of the guard's ``_bus`` found to send
  `CallCompleted` nowhere. While the bus's table is that one, the forms time
  nothing. Otherwise they ask ``_wants_completed()`` once the call is admitted,
  and when it says yes the call runs timed: the decorators and ``call`` /
  ``call_async`` hand it to ``_run_timed`` / ``_run_timed_async``, and blocks
  keep the start time with their permit (a ``_Started``). The outcome is then
  recorded as ever (a quiet success only counted), and ``_completed(outcome,
  start)`` publishes the event. The check costs one identity comparison when
  nobody listens. A guard with no ``_bus`` of its own has a silent one, whose
  table (``None``) is the ``_untimed`` it starts with.
* ``_rejected`` is a counter too: the decorators' own refusals count
  themselves there with one ``next()``.

`Guard` turns that protocol into the decorator (for ``def`` and
``async def``, signatures kept), ``with`` / ``async with`` blocks and
``call`` / ``call_async``. A form used in a way that cannot work (``call`` given an
``async`` function, ``call_async`` given a plain one, a generator function anywhere)
raises ``MisuseError``, a `TypeError` that reaches ``_on_error`` like any exception;
breakers count it neither way. Everything else in resilio, ``compose()`` included,
builds on these same members.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from threading import get_ident
from types import AsyncGeneratorType, CoroutineType, GeneratorType, TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from typing_extensions import Self

from ._errors import MisuseError, RejectedError
from ._instant import SWITCH
from ._waiters import finished

P = ParamSpec("P")
T = TypeVar("T")

# The permits held by the ``with`` blocks open in the current thread or task: a linked
# stack of nodes [guard, token, rest, thread], pushed by ContextVar.set(), so tasks
# that copied the context never see each other's pushes. Setting a ContextVar costs
# more than all the rest of a closed breaker's block, so the bottom node is not
# popped but ended in place (its guard set to None) and taken again by the next
# block entered in the thread that made it. A node shared through a copied context
# is seen by each task only while ended or held by a block it cannot exit; in one
# thread, taking it is atomic (no await between the check and the claim), and
# another thread never takes it.
_held: ContextVar[list[Any] | None] = ContextVar("resilio_held_permits", default=None)


# What ``__aexit__`` hands back when it has nothing to wait for.
_NOTHING = finished(None)

# A refusal is built without running its Python-level __init__ (see _errors).
_new_exception = BaseException.__new__


# What calling an async or generator function returns: ``call()`` checks a result's
# type against these before counting it as a success (one set look-up).
_DEFERRED = frozenset({CoroutineType, GeneratorType, AsyncGeneratorType})


def _check_result(guard: Guard, fn: Callable[..., Any], result: Any) -> None:
    """Refuse what ``call()`` got from an async or generator function."""
    if type(result) is CoroutineType:
        result.close()
        msg = f"{fn!r} is async: use call_async() for it"
        raise MisuseError(msg)
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        if type(result) is GeneratorType:
            result.close()
        raise MisuseError(_generators_refused(guard, fn))
    # A plain function that built a generator and returned it: its result stands.


def _check_awaitable(guard: Guard, fn: Callable[..., Any], result: Any) -> None:
    """Refuse what ``call_async()`` got when it is not awaitable."""
    if inspect.isawaitable(result):
        return
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise MisuseError(_generators_refused(guard, fn))
    msg = (
        f"{fn!r} returned {type(result).__name__}, not an awaitable: "
        "call_async() is for async functions, use call() for plain ones"
    )
    raise MisuseError(msg)


def _generators_refused(guard: Guard, fn: Callable[..., Any]) -> str:
    return (
        f"{type(guard).__name__} guards calls, not generators: {fn!r}; "
        "guard the work inside the generator instead"
    )


class _Silent:
    """The ``_bus`` of a guard that publishes nothing: its routing table is ``None``,
    the ``_untimed`` and ``_unheard`` a guard starts with, so it never times a call."""

    __slots__ = ()
    _routes = None


_SILENT = _Silent()


class _Started:
    """The permit of a ``with`` block somebody times, and the clock time it started."""

    __slots__ = ("start", "token")

    def __init__(self, token: Any, start: float) -> None:
        self.token = token
        self.start = start


def is_async_callable(fn: object) -> bool:
    """Whether calling *fn* returns an awaitable coroutine; looks through partials."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, type):
        return False  # calling a class builds an instance, whatever its __call__ does
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - instances with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


class Guard:
    """The base class of every primitive that guards a call.

    Breakers and buckets (and, with them, anything that guards a call in the four
    ways) derive from it, so it is the type to annotate a parameter that takes "any
    guard", and the class type checkers name in their messages about ``call``:

    * ``@guard`` on a ``def`` or an ``async def`` (the signature is kept);
    * ``with guard:`` and ``async with guard:`` around a block;
    * ``guard.call(fn, *args, **kwargs)`` for a ``def`` and
      ``await guard.call_async(fn, *args, **kwargs)`` for an ``async def``.

    Handing an ``async def`` to ``call`` (or a ``def`` to ``call_async``) raises
    [`MisuseError`][resilio.MisuseError] before anything runs. Subclassing `Guard`
    outside resilio is not supported: the protocol between it and the primitives is
    private and may change.
    """

    __slots__ = ()

    _acquire_waits = False
    _outcomes = True
    _free_success = True
    _free: object = None
    _timed = False
    _timed_free: object = None
    _refused_until: float = 0.0
    _refused_type: type[RejectedError] = RejectedError
    _name: str = ""
    _entered: object = None
    _unheard: object = None
    _failure_if: Any = None
    _last_failure: object = None
    _untimed: object = None
    _bus: Any = _SILENT
    _succeeded: Any = None
    _rejected: Any = None

    # -- the protocol each primitive implements -------------------------------------

    def _acquire(self) -> object:
        raise NotImplementedError

    async def _acquire_async(self) -> object:
        return self._acquire()

    def _on_success(self, token: Any) -> None:
        raise NotImplementedError

    def _on_error(self, token: Any, exc: Exception) -> Any:
        raise NotImplementedError

    def _release(self, token: Any) -> None:
        raise NotImplementedError

    def _on_result(self, token: Any, result: Any) -> Any:
        """Record a call that returned *result* (only when ``_failure_if`` is set)."""
        raise NotImplementedError

    def _wants_completed(self) -> bool:
        """Whether anyone subscribes to `CallCompleted` (see ``_untimed``)."""
        return False

    def _completed(self, outcome: str, start: float) -> None:
        """Publish that a call started at *start* ended with *outcome*."""
        raise NotImplementedError

    def _on_timed_success(self, token: Any) -> None:
        """``_on_success`` for a ``(token, start)`` made by the decorator (see _timed_free)."""
        self._on_success(token)

    def _announce_refusal(self, now: float, retry_after: float | None) -> None:
        raise NotImplementedError

    def _orphan_token(self) -> Any:
        """A token for a ``with`` block left in another context than it was entered."""
        return self._free

    # -- calls somebody times (CallCompleted) ---------------------------------------

    def _run_timed(
        self,
        token: Any,
        start: float | None,
        fn: Callable[..., T],
        args: Any,
        kwargs: Any,
        *,
        checked: bool = False,
    ) -> T:
        """Run an admitted call, report its outcome and publish its `CallCompleted`.

        *start* is the clock time it started at, or ``None`` to read it now; *checked*
        refuses what an async or generator function returns, as ``call`` does.
        """
        if start is None:
            start = self._now()  # type: ignore[attr-defined]
        try:
            result = fn(*args, **kwargs)
            if checked and type(result) in _DEFERRED:
                _check_result(self, fn, result)
        except Exception as exc:
            self._completed(self._on_error(token, exc), start)
            raise
        except BaseException:
            self._release(token)
            self._completed("ignored", start)
            raise
        if self._failure_if is not None:
            self._completed(self._on_result(token, result), start)
        elif self._free_success or self._free is not token:
            self._on_success(token)
            self._completed("succeeded", start)
        else:
            next(self._succeeded)  # a quiet success (see _free_success)
            self._completed("succeeded", start)
        return result

    async def _run_timed_async(
        self,
        token: Any,
        fn: Callable[..., Awaitable[T]],
        args: Any,
        kwargs: Any,
        *,
        checked: bool = False,
    ) -> T:
        """`_run_timed` for an async call, started now."""
        start: float = self._now()  # type: ignore[attr-defined]
        try:
            awaitable = fn(*args, **kwargs)
            if checked and type(awaitable) is not CoroutineType:
                _check_awaitable(self, fn, awaitable)
            result = await awaitable
        except Exception as exc:
            self._completed(self._on_error(token, exc), start)
            raise
        except BaseException:
            self._release(token)
            self._completed("ignored", start)
            raise
        if self._failure_if is not None:
            self._completed(self._on_result(token, result), start)
        elif self._free_success or self._free is not token:
            self._on_success(token)
            self._completed("succeeded", start)
        else:
            next(self._succeeded)  # a quiet success (see _free_success)
            self._completed("succeeded", start)
        return result

    def _exit_timed(self, started: _Started, exc: BaseException | None) -> None:
        """Settle a timed block's permit and publish its `CallCompleted`."""
        token = started.token
        if exc is None:
            self._on_success(token)
            outcome = "succeeded"
        elif isinstance(exc, Exception):
            outcome = self._on_error(token, exc)
        else:
            self._release(token)
            outcome = "ignored"
        self._completed(outcome, started.start)

    # -- the four forms -------------------------------------------------------------

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate a ``def`` or an ``async def``; its signature is kept."""
        if not callable(fn):
            msg = f"{type(self).__name__} decorates callables, not {fn!r}"
            raise TypeError(msg)
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise MisuseError(_generators_refused(self, fn))
        if is_async_callable(fn):
            return cast("Callable[P, T]", self._wrap_async(fn))  # type: ignore[arg-type]
        return self._wrap_sync(fn)

    def _wrap_admission_only(self, fn: Callable[P, T]) -> Callable[P, T]:
        acquire = self._acquire

        @functools.wraps(fn)
        def admitted(*args: P.args, **kwargs: P.kwargs) -> T:
            acquire()
            return fn(*args, **kwargs)

        return admitted

    def _wrap_admission_only_async(
        self, fn: Callable[P, Awaitable[T]]
    ) -> Callable[P, Awaitable[T]]:
        acquire = self._acquire_async

        @functools.wraps(fn)
        async def admitted(*args: P.args, **kwargs: P.kwargs) -> T:
            await acquire()
            return await fn(*args, **kwargs)

        return admitted

    # The wrappers below are written out in full, once per colour and per kind of
    # free path, rather than built from shared helpers: each helper call would add
    # a Python frame (~50 ns) to every guarded call, about half of the whole cost of
    # a closed breaker. ``call``/``call_async`` repeat the same protocol without the
    # quiet free path. A guard that judges results (``_failure_if``) gets a wrapper
    # of its own, so the others never test for it. A wrapper's closure holds only
    # what its free path and a refusal use: every cell is copied into the frame on
    # each call, so the rarer paths look their methods up on the guard.

    def _wrap_sync(self, fn: Callable[P, T]) -> Callable[P, T]:
        if not self._outcomes:
            return self._wrap_admission_only(fn)
        if self._failure_if is not None:
            return self._wrap_judged(fn)
        guard = self
        on_success = self._on_success
        # What a refusal needs (see _refused_until): a guard that never refuses may lack it.
        clock: Any = getattr(self, "_now", None)
        bus: Any = self._bus
        refused, name = self._refused_type, self._name

        if self._timed:
            on_success = self._on_timed_success

            @functools.wraps(fn)
            def guarded_timed(*args: P.args, **kwargs: P.kwargs) -> T:
                token: Any = guard._timed_free
                if token is None:
                    until = guard._refused_until
                    if until and (now := clock()) < until and not (SWITCH.on and SWITCH.here()):
                        next(guard._rejected)
                        if bus._routes is not guard._unheard:
                            guard._announce_refusal(now, until - now)
                        raise _new_exception(refused, name, until - now, guard._last_failure)
                    token = guard._acquire()
                else:
                    token = (token, clock())
                if bus._routes is not guard._untimed and guard._wants_completed():
                    return guard._run_timed(token, token[1], fn, args, kwargs)
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    guard._on_error(token, exc)
                    raise
                except BaseException:
                    guard._release(token)
                    raise
                on_success(token)
                return result

            return guarded_timed

        if self._free_success:

            @functools.wraps(fn)
            def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
                token = guard._free
                if token is None:
                    until = guard._refused_until
                    if until and (now := clock()) < until and not (SWITCH.on and SWITCH.here()):
                        next(guard._rejected)
                        if bus._routes is not guard._unheard:
                            guard._announce_refusal(now, until - now)
                        raise _new_exception(refused, name, until - now, guard._last_failure)
                    token = guard._acquire()
                if bus._routes is not guard._untimed and guard._wants_completed():
                    return guard._run_timed(token, None, fn, args, kwargs)
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    guard._on_error(token, exc)
                    raise
                except BaseException:
                    guard._release(token)
                    raise
                on_success(token)
                return result

            return guarded

        succeeded = self._succeeded

        @functools.wraps(fn)
        def guarded_quiet(*args: P.args, **kwargs: P.kwargs) -> T:
            token = guard._free
            if token is None:
                until = guard._refused_until
                if until and (now := clock()) < until and not (SWITCH.on and SWITCH.here()):
                    next(guard._rejected)
                    if bus._routes is not guard._unheard:
                        guard._announce_refusal(now, until - now)
                    raise _new_exception(refused, name, until - now, guard._last_failure)
                token = guard._acquire()
                if bus._routes is not guard._untimed and guard._wants_completed():
                    return guard._run_timed(token, None, fn, args, kwargs)
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    guard._on_error(token, exc)
                    raise
                except BaseException:
                    guard._release(token)
                    raise
                guard._on_success(token)
                return result
            if bus._routes is not guard._untimed and guard._wants_completed():
                return guard._run_timed(token, None, fn, args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                guard._on_error(token, exc)
                raise
            except BaseException:
                guard._release(token)  # no permit to give back: counts it as ignored
                raise
            if guard._free is not token:  # another call failed meanwhile: report it
                guard._on_success(token)
            else:
                next(succeeded)
            return result

        return guarded_quiet

    def _wrap_judged(self, fn: Callable[P, T]) -> Callable[P, T]:
        # _wrap_sync's protocol, every result handed to _on_result. The start time
        # of a timed guard comes from acquire(): its _free is always None.
        guard = self
        on_result = self._on_result
        clock: Any = getattr(self, "_now", None)
        bus: Any = self._bus
        refused, name = self._refused_type, self._name

        @functools.wraps(fn)
        def judged(*args: P.args, **kwargs: P.kwargs) -> T:
            token = guard._free
            if token is None:
                until = guard._refused_until
                if until and (now := clock()) < until and not (SWITCH.on and SWITCH.here()):
                    next(guard._rejected)
                    if bus._routes is not guard._unheard:
                        guard._announce_refusal(now, until - now)
                    raise _new_exception(refused, name, until - now, guard._last_failure)
                token = guard._acquire()
            if bus._routes is not guard._untimed and guard._wants_completed():
                return guard._run_timed(token, None, fn, args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                guard._on_error(token, exc)
                raise
            except BaseException:
                guard._release(token)
                raise
            on_result(token, result)
            return result

        return judged

    def _wrap_judged_async(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        guard = self
        on_result = self._on_result
        clock: Any = getattr(self, "_now", None)
        bus: Any = self._bus
        refused, name = self._refused_type, self._name

        @functools.wraps(fn)
        async def judged(*args: P.args, **kwargs: P.kwargs) -> T:
            token = guard._free
            if token is None:
                until = guard._refused_until
                if until and (now := clock()) < until and not (SWITCH.on and SWITCH.here()):
                    next(guard._rejected)
                    if bus._routes is not guard._unheard:
                        guard._announce_refusal(now, until - now)
                    raise _new_exception(refused, name, until - now, guard._last_failure)
                token = await guard._acquire_async() if guard._acquire_waits else guard._acquire()
            if bus._routes is not guard._untimed and guard._wants_completed():
                return await guard._run_timed_async(token, fn, args, kwargs)
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                guard._on_error(token, exc)
                raise
            except BaseException:
                guard._release(token)
                raise
            on_result(token, result)
            return result

        return judged

    def _wrap_async(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        if not self._outcomes:
            return self._wrap_admission_only_async(fn)
        if self._failure_if is not None:
            return self._wrap_judged_async(fn)
        guard = self
        on_success = self._on_success
        # What a refusal needs (see _refused_until): a guard that never refuses may lack it.
        clock: Any = getattr(self, "_now", None)
        bus: Any = self._bus
        refused, name = self._refused_type, self._name

        if self._free_success:

            @functools.wraps(fn)
            async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
                token = guard._free
                if token is None:
                    until = guard._refused_until
                    if until and (now := clock()) < until and not (SWITCH.on and SWITCH.here()):
                        next(guard._rejected)
                        if bus._routes is not guard._unheard:
                            guard._announce_refusal(now, until - now)
                        raise _new_exception(refused, name, until - now, guard._last_failure)
                    token = (
                        await guard._acquire_async() if guard._acquire_waits else guard._acquire()
                    )
                if bus._routes is not guard._untimed and guard._wants_completed():
                    return await guard._run_timed_async(token, fn, args, kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    guard._on_error(token, exc)
                    raise
                except BaseException:
                    guard._release(token)
                    raise
                on_success(token)
                return result

            return guarded

        succeeded = self._succeeded

        @functools.wraps(fn)
        async def guarded_quiet(*args: P.args, **kwargs: P.kwargs) -> T:
            token = guard._free
            if token is None:
                until = guard._refused_until
                if until and (now := clock()) < until and not (SWITCH.on and SWITCH.here()):
                    next(guard._rejected)
                    if bus._routes is not guard._unheard:
                        guard._announce_refusal(now, until - now)
                    raise _new_exception(refused, name, until - now, guard._last_failure)
                token = await guard._acquire_async() if guard._acquire_waits else guard._acquire()
                if bus._routes is not guard._untimed and guard._wants_completed():
                    return await guard._run_timed_async(token, fn, args, kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    guard._on_error(token, exc)
                    raise
                except BaseException:
                    guard._release(token)
                    raise
                guard._on_success(token)
                return result
            if bus._routes is not guard._untimed and guard._wants_completed():
                return await guard._run_timed_async(token, fn, args, kwargs)
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                guard._on_error(token, exc)
                raise
            except BaseException:
                guard._release(token)  # no permit to give back: counts it as ignored
                raise
            if guard._free is not token:  # another call failed meanwhile: report it
                guard._on_success(token)
            else:
                next(succeeded)
            return result

        return guarded_quiet

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` under this guard and return its result.

        Raises:
            MisuseError: *fn* is an ``async`` or generator function (use
                `call_async()`, or guard the work inside the generator). It counts
                neither as a success nor as a failure.
        """
        token = self._free
        if token is None:
            if not self._outcomes:
                self._acquire()
                result = fn(*args, **kwargs)
                if type(result) in _DEFERRED:
                    _check_result(self, fn, result)
                return result
            token = self._acquire()
            if self._untimed is not self._bus._routes and self._wants_completed():
                return self._run_timed(token, None, fn, args, kwargs, checked=True)
            try:
                result = fn(*args, **kwargs)
                if type(result) in _DEFERRED:
                    _check_result(self, fn, result)
            except Exception as exc:
                self._on_error(token, exc)
                raise
            except BaseException:
                self._release(token)
                raise
            if self._failure_if is None:
                self._on_success(token)
            else:
                self._on_result(token, result)
            return result
        if self._untimed is not self._bus._routes and self._wants_completed():
            return self._run_timed(token, None, fn, args, kwargs, checked=True)
        # Admitted without a permit, and a success is reported only when it may
        # change something (see _free_success).
        try:
            result = fn(*args, **kwargs)
            if type(result) in _DEFERRED:
                _check_result(self, fn, result)
        except Exception as exc:
            self._on_error(token, exc)
            raise
        except BaseException:
            self._release(token)  # no permit to give back: counts it as ignored
            raise
        if self._failure_if is not None:
            self._on_result(token, result)
        elif self._free_success or self._free is not token:
            self._on_success(token)
        else:
            next(self._succeeded)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` under this guard and return its result.

        Raises:
            MisuseError: ``fn(*args, **kwargs)`` returned nothing to await (a plain
                function, which has then run once, or a generator function). It
                counts neither as a success nor as a failure.
        """
        token = self._free
        if token is None:
            if not self._outcomes:
                if self._acquire_waits:
                    await self._acquire_async()
                else:
                    self._acquire()
                awaitable = fn(*args, **kwargs)
                if type(awaitable) is not CoroutineType:
                    _check_awaitable(self, fn, awaitable)
                return await awaitable
            token = await self._acquire_async() if self._acquire_waits else self._acquire()
            if self._untimed is not self._bus._routes and self._wants_completed():
                return await self._run_timed_async(token, fn, args, kwargs, checked=True)
            try:
                awaitable = fn(*args, **kwargs)
                if type(awaitable) is not CoroutineType:
                    _check_awaitable(self, fn, awaitable)
                result = await awaitable
            except Exception as exc:
                self._on_error(token, exc)
                raise
            except BaseException:
                self._release(token)
                raise
            if self._failure_if is None:
                self._on_success(token)
            else:
                self._on_result(token, result)
            return result
        if self._untimed is not self._bus._routes and self._wants_completed():
            return await self._run_timed_async(token, fn, args, kwargs, checked=True)
        try:
            awaitable = fn(*args, **kwargs)
            if type(awaitable) is not CoroutineType:
                _check_awaitable(self, fn, awaitable)
            result = await awaitable
        except Exception as exc:
            self._on_error(token, exc)
            raise
        except BaseException:
            self._release(token)  # no permit to give back: counts it as ignored
            raise
        if self._failure_if is not None:
            self._on_result(token, result)
        elif self._free_success or self._free is not token:
            self._on_success(token)
        else:
            next(self._succeeded)
        return result

    # A free token means the guard counts outcomes (see _free), so the blocks check
    # _outcomes only off that path. A block somebody times holds a _Started (never
    # equal to _free) instead of its token, so the quiet exit never mistakes it.

    def __enter__(self) -> Self:
        token = self._free
        if token is None:
            if not self._outcomes:
                self._acquire()
                return self
            token = self._acquire()
        if self._untimed is not self._bus._routes and self._wants_completed():
            token = _Started(token, self._now())  # type: ignore[attr-defined]
        node = _held.get()
        if node is not None and node[0] is None and node[3] == get_ident():
            node[1] = token
            node[0] = self
        else:
            _held.set([self, token, node, get_ident()])
        return self

    async def __aenter__(self) -> Self:
        token = self._free
        if token is None:
            if not self._outcomes:
                if self._acquire_waits:
                    await self._acquire_async()
                else:
                    self._acquire()
                return self
            token = await self._acquire_async() if self._acquire_waits else self._acquire()
        if self._untimed is not self._bus._routes and self._wants_completed():
            token = _Started(token, self._now())  # type: ignore[attr-defined]
        node = _held.get()
        if node is not None and node[0] is None and node[3] == get_ident():
            node[1] = token
            node[0] = self
        else:
            _held.set([self, token, node, get_ident()])
        return self

    # __exit__ and __aexit__ repeat each other rather than share a helper: a frame
    # costs as much as the rest of a clean exit.

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        node = _held.get()
        if node is not None and node[0] is self:
            token = node[1]
            node[0] = None
            if node[2] is not None:
                _held.set(node[2])
        elif not self._outcomes:
            return
        else:
            token = self._pop_token(node)
        if exc is None:
            # A token equal to _free means a success changes nothing (_free_success).
            if self._free_success or self._free is not token:
                if token.__class__ is _Started:
                    self._exit_timed(token, None)
                else:
                    self._on_success(token)
            else:
                next(self._succeeded)
        elif token.__class__ is _Started:
            self._exit_timed(token, exc)
        elif isinstance(exc, Exception):
            self._on_error(token, exc)
        else:
            self._release(token)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        node = _held.get()
        if node is not None and node[0] is self:
            token = node[1]
            node[0] = None
            if node[2] is not None:
                _held.set(node[2])
        elif not self._outcomes:
            return
        else:
            token = self._pop_token(node)
        if exc is None:
            if self._free_success or self._free is not token:
                if token.__class__ is _Started:
                    self._exit_timed(token, None)
                else:
                    self._on_success(token)
            else:
                next(self._succeeded)
        elif token.__class__ is _Started:
            self._exit_timed(token, exc)
        elif isinstance(exc, Exception):
            self._on_error(token, exc)
        else:
            self._release(token)

    # For a guard that counts outcomes and whose admission never waits these
    # serve as ``__aenter__`` / ``__aexit__``: plain functions doing the work of
    # ``__enter__`` / ``__exit__`` that hand back a finished awaitable made once
    # (``_entered``, holding the guard), cheaper than making and running a coroutine.

    def _aenter_at_once(self) -> Awaitable[Self]:
        token = self._free
        if token is None:
            token = self._acquire()
        if self._untimed is not self._bus._routes and self._wants_completed():
            token = _Started(token, self._now())  # type: ignore[attr-defined]
        node = _held.get()
        if node is not None and node[0] is None and node[3] == get_ident():
            node[1] = token
            node[0] = self
        else:
            _held.set([self, token, node, get_ident()])
        return cast("Awaitable[Self]", self._entered)

    def _aexit_at_once(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        node = _held.get()
        if node is not None and node[0] is self:
            token = node[1]
            node[0] = None
            if node[2] is not None:
                _held.set(node[2])
        else:
            token = self._pop_token(node)
        if exc is None:
            if self._free_success or self._free is not token:
                if token.__class__ is _Started:
                    self._exit_timed(token, None)
                else:
                    self._on_success(token)
            else:
                next(self._succeeded)
        elif token.__class__ is _Started:
            self._exit_timed(token, exc)
        elif isinstance(exc, Exception):
            self._on_error(token, exc)
        else:
            self._release(token)
        return _NOTHING

    def _pop_token(self, node: list[Any] | None) -> Any:
        """Unlink this guard's innermost permit from *node*, the stack of held permits."""
        # Blocks exited out of order (a generator suspended inside one): unlink ours.
        skipped = []
        while node is not None and node[0] is not self:
            skipped.append(node)
            node = node[2]
        if node is None:
            # Left from another task or thread than the one that entered (an async
            # generator closed elsewhere, an exit stack handed over): the permit
            # must still be settled, so use the primitive's current token.
            return self._orphan_token()
        token, rest = node[1], node[2]
        node[0] = None
        for guard, other, _, thread in reversed(skipped):
            rest = [guard, other, rest, thread]
        _held.set(rest)
        return token
