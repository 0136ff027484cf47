"""Streams: one engine call's events as they happen, then its result.

``engine.stream(...)`` drives the call in a thread of its own and hands its
events to the consumer through a buffer; ``engine.astream(...)`` drives it as
a task on the running event loop. The buffer's policy, the same for both:
before each handler call the engine waits while ``buffer`` events or more
are unread; the events of the node in flight (a handler's tokens) are always
buffered, never dropped, so a slow consumer holds the engine back at node
boundaries and the buffer never exceeds ``buffer`` plus one node's events.
Leaving the stream early (``break`` inside ``with``, ``close()``) cancels the
call before its next node, which ends ``cancelled`` with a checkpoint.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ._events import subscribe
from ._models import Event, WorkflowResult

if TYPE_CHECKING:
    import asyncio
    from types import TracebackType

__all__ = ["AsyncRunStream", "RunStream"]

DEFAULT_BUFFER = 1024
"""Unread events at which the engine waits before its next handler call."""


class Streamable(Protocol):
    """What a stream needs of the engine (``WorkflowEngine``): a twin per call, and cancel."""

    def _for_stream(
        self,
        tap: Callable[[Event], None],
        *,
        pace: Callable[[], None] | None = None,
        apace: Callable[[], Awaitable[None]] | None = None,
    ) -> Any: ...

    def cancel(self) -> None: ...


def _check(kinds: Iterable[str] | None, buffer: int) -> frozenset[str] | None:
    if type(buffer) is not int or buffer < 1:
        raise ValueError(f"buffer must be an integer >= 1 (events), got {buffer!r}")
    if kinds is None:
        return None
    if isinstance(kinds, str):
        raise TypeError(f"kinds must be a collection of event kinds, e.g. [{kinds!r}], not a str")
    chosen = frozenset(str(k) for k in kinds)
    if not chosen:
        raise ValueError("kinds must name at least one event kind (None: every kind)")
    return chosen


def _tap(kinds: frozenset[str] | None, put: Callable[[Event], None]) -> Callable[[Event], None]:
    """The stream's event callback: ``put``, told only the kinds asked for (``subscribe``)."""
    return put if kinds is None else subscribe(put, *kinds)


class RunStream:
    """The events of one engine call, iterated as they happen; ``result`` once it ended.

    Use it in a ``with`` block: leaving the block before the end cancels the
    call (it ends ``cancelled``, with a checkpoint, at its next node). An
    exception the call raised is raised by the iteration once the events
    before it are read, and by ``result``.
    """

    def __init__(
        self,
        engine: Streamable,
        call: Callable[[Any], WorkflowResult],
        kinds: Iterable[str] | None = None,
        buffer: int = DEFAULT_BUFFER,
    ) -> None:
        self._kinds = _check(kinds, buffer)
        self._buffer = buffer
        self._events: deque[Event] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._done = False
        self._result: WorkflowResult | None = None
        self._error: BaseException | None = None
        self._engine = engine._for_stream(_tap(self._kinds, self._put), pace=self._pace)
        self._thread = threading.Thread(
            target=self._drive, args=(call,), name="zeroflow-stream", daemon=True
        )
        self._thread.start()

    def _drive(self, call: Callable[[Any], WorkflowResult]) -> None:
        try:
            self._result = call(self._engine)
        except BaseException as exc:  # handed to the consumer, raised there
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _put(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def _pace(self) -> None:
        with self._cond:
            while len(self._events) >= self._buffer and not self._closed:
                self._cond.wait()

    def __iter__(self) -> Iterator[Event]:
        try:
            while True:
                with self._cond:
                    while not self._events and not self._done:
                        self._cond.wait()
                    if not self._events:
                        break
                    event = self._events.popleft()
                    self._cond.notify_all()
                yield event
        finally:
            if not self._done:
                self.close()  # left early (break, an exception, the generator dropped)
        if self._error is not None:
            raise self._error

    @property
    def result(self) -> WorkflowResult:
        """The call's result; ``RuntimeError`` while it still runs (read the stream first)."""
        if not self._done:
            raise RuntimeError(
                "the streamed run has not ended yet: iterate the stream to its end "
                "(or close() it) before reading result"
            )
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def close(self) -> None:
        """Cancel the call if it still runs (before its next node) and wait for it to end."""
        self._engine.cancel()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self) -> RunStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.close()


class AsyncRunStream:
    """``RunStream`` for ``async for``: the call runs as a task on the running loop.

    Use it in an ``async with`` block (or ``await stream.aclose()``): leaving
    early cancels the call at its next node.
    """

    def __init__(
        self,
        engine: Streamable,
        call: Callable[[Any], Awaitable[WorkflowResult]],
        kinds: Iterable[str] | None = None,
        buffer: int = DEFAULT_BUFFER,
    ) -> None:
        self._kinds = _check(kinds, buffer)
        self._buffer = buffer
        self._call = call
        self._events: deque[Event] = deque()
        self._lock = threading.Lock()  # a batch's plain handlers emit from worker threads
        self._closed = False
        self._engine = engine._for_stream(_tap(self._kinds, self._put), apace=self._pace)
        self._task: asyncio.Task[WorkflowResult] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._room: asyncio.Event | None = None

    def _start(self) -> asyncio.Task[WorkflowResult]:
        import asyncio

        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._ready, self._room = asyncio.Event(), asyncio.Event()
            self._task = asyncio.ensure_future(self._call(self._engine))
            ready = self._ready
            self._task.add_done_callback(lambda _: ready.set())
        return self._task

    def _put(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
        loop, ready = self._loop, self._ready
        if loop is None or ready is None:
            return
        if _in_loop(loop):
            ready.set()
        else:
            loop.call_soon_threadsafe(ready.set)

    async def _pace(self) -> None:
        room = self._room
        while room is not None and len(self._events) >= self._buffer and not self._closed:
            room.clear()
            await room.wait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        task = self._start()
        ready, room = self._ready, self._room
        assert ready is not None and room is not None
        try:
            while True:
                with self._lock:
                    event = self._events.popleft() if self._events else None
                if event is not None:
                    room.set()
                    yield event
                    continue
                if task.done():
                    break
                ready.clear()
                with self._lock:
                    pending = bool(self._events)
                if not pending and not task.done():
                    await ready.wait()
        finally:
            if not task.done():
                await self.aclose()
        task.result()  # raises what the call raised

    @property
    def result(self) -> WorkflowResult:
        """The call's result; ``RuntimeError`` while it still runs (read the stream first)."""
        task = self._task
        if task is None or not task.done():
            raise RuntimeError(
                "the streamed run has not ended yet: iterate the stream to its end "
                "(or aclose() it) before reading result"
            )
        return task.result()

    async def aclose(self) -> None:
        """Cancel the call if it still runs (before its next node) and wait for it to end."""
        task = self._start()
        self._engine.cancel()
        self._closed = True
        if self._room is not None:
            self._room.set()
        import asyncio

        await asyncio.wait([task])  # what it raised is read from result

    async def __aenter__(self) -> AsyncRunStream:
        self._start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is not None and not task.done():
            await self.aclose()


def _in_loop(loop: Any) -> bool:
    import asyncio

    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
