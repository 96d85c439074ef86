"""Bounded retries honouring Retry-After, and the client-side per-minute limiter.

gspread's BackOffHTTPClient retries a persistent 429 forever (reference §3.10) and
googleapiclient retries only when asked; saeko-sync retries every Google call itself, with
exponential backoff and jitter, for at most GOOGLE_MAX_RETRY_SECONDS, then raises a
TransientError that says so.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception

from connectors.google.errors import LostResponse
from core.errors import TransientError

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_BACKOFF_SECONDS = 32.0  # Google's guidance: exponential backoff up to ~32-64 s
MINUTE = 60.0  # the window of Google's per-minute quotas (reference §3.9)
JITTER = (0.8, 1.2)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) and not isinstance(exc, LostResponse)


class Retrier:
    """Runs a call again on TransientError, within a total time budget."""

    def __init__(self, max_seconds: float, base_seconds: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.max_seconds = max_seconds
        self.base_seconds = base_seconds
        self._sleep = sleep

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        backoff = self.base_seconds * 2 ** (state.attempt_number - 1)
        return min(MAX_BACKOFF_SECONDS, backoff) * random.uniform(*JITTER)

    def _stop(self, state: RetryCallState) -> bool:
        elapsed = state.seconds_since_start or 0.0
        return elapsed + self._wait(state) > self.max_seconds

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, retried while it raises TransientError and the budget lasts."""
        retrying = Retrying(stop=self._stop, wait=self._wait, retry=retry_if_exception(_retryable),
                            reraise=True, sleep=self._sleep,
                            before_sleep=lambda s: log.warning(
                                "google.retry", what=what, attempt=s.attempt_number,
                                error=str(s.outcome.exception()) if s.outcome else None))
        started = time.monotonic()
        attempts = 0

        def counted() -> T:
            nonlocal attempts
            attempts += 1
            return fn()

        try:
            return retrying(counted)
        except LostResponse:
            raise
        except TransientError as exc:
            elapsed = time.monotonic() - started
            raise TransientError(
                f"{exc} Sin éxito tras {attempts} intento(s) en {elapsed:.1f} s "
                f"(GOOGLE_MAX_RETRY_SECONDS={self.max_seconds:g}).",
                status=exc.status, body=exc.body, retry_after=exc.retry_after) from exc


class MinuteLimiter:
    """Client-side limiter: at most ``limits[bucket]`` calls in any rolling minute, so the
    documented per-user quotas are never exceeded by this process."""

    def __init__(self, limits: dict[str, int], sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._calls: dict[str, deque[float]] = {bucket: deque() for bucket in limits}
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, bucket: str) -> None:
        """Take one slot of ``bucket``, sleeping until one frees up (at most a minute)."""
        if bucket not in self.limits:
            return
        with self._lock:
            calls = self._calls[bucket]
            now = self._clock()
            while calls and calls[0] <= now - MINUTE:
                calls.popleft()
            limit = self.limits[bucket]
            wait = max(0.0, calls[-limit] + MINUTE - now) if len(calls) >= limit else 0.0
            calls.append(now + wait)
        if wait > 0:
            log.info("google.rate_limit.wait", bucket=bucket, seconds=round(wait, 2))
            self.waited += wait
            self._sleep(wait)
