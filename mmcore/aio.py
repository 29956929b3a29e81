"""Cancellation-safe asyncio helpers for the long-lived loops (feeds, order entry, user data, pollers, timers).

Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives in the same loop iteration in which its
inner awaitable completes (CPython issue gh-86296, fixed in 3.12 by rebuilding ``wait_for`` on
``asyncio.timeout``). A reconnect loop that then goes on never ends: ``asyncio.run`` waits on it for ever after a
failure (seen: a paper test hung CI for 90 min after its emulator stopped). So the loops here

- wait with :func:`wait_within` (``asyncio.timeout``, which keeps a cancellation in 3.11), and
- call :func:`raise_if_cancelled` at the head of every iteration, which re-raises a cancellation that some
  library call (or an ``except Exception`` around one) consumed.
"""
from __future__ import annotations

import asyncio

__all__ = ["raise_if_cancelled", "wait_within"]


def raise_if_cancelled() -> None:
    """Raise ``asyncio.CancelledError`` if the current task has a cancellation requested that it has not
    acted on (``Task.cancelling() > 0``; Python >= 3.11). A no-op outside a task."""
    t = asyncio.current_task()
    if t is not None and t.cancelling():
        raise asyncio.CancelledError


async def wait_within(aw, timeout: float | None):
    """``await aw`` for at most ``timeout`` seconds (None: no limit); returns its result.

    Raises ``TimeoutError`` (``asyncio.TimeoutError`` is the same class on 3.11) when the time is up (``aw`` is
    then cancelled) and ``asyncio.CancelledError`` when the caller is cancelled, also if ``aw`` completed in
    the same iteration (unlike 3.11's ``asyncio.wait_for``)."""
    async with asyncio.timeout(timeout):
        return await aw
