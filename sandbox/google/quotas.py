"""Per-minute, per-user quotas (sliding window), answering 429 like Google.

Windows run on wall time (monotonic), like the quotas of the real services and the
client's own limiter; the sandbox's business clock (frozen in tests) is for data only.
Tests lower or raise a limit with ``GoogleTool.set_quota``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

QUOTA_WINDOW_SECONDS = 60.0
# Documented per-user, per-minute limits (reference §3.9, §4.2, §5.3, §6.5).
DEFAULT_LIMITS = {
    "sheets_read": 60,       # Sheets: 60 read requests / min / user
    "sheets_write": 60,      # Sheets: 60 write requests / min / user
    "forms_read": 390,       # Forms: reads 390 / min / user
    "forms_expensive": 180,  # Forms: responses.list 180 / min / user
    "gmail_units": 15_000,   # Gmail: 15,000 quota units / min / user (send = 100 units)
    "calendar": 600,         # Calendar: 600 requests / min / user
}


class QuotaBook:
    """Counts usage per (bucket, user) over the last minute."""

    def __init__(self, limits: dict[str, int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self._clock = clock
        self._used: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        self.exceeded: dict[str, int] = {}

    def set_limit(self, bucket: str, per_minute: int) -> None:
        if bucket not in self.limits:
            raise ValueError(f"unknown quota bucket {bucket!r}; one of {sorted(self.limits)}")
        with self._lock:
            self.limits[bucket] = per_minute

    def reset(self) -> None:
        with self._lock:
            self._used.clear()

    def take(self, bucket: str, user: str, cost: int = 1) -> float | None:
        """Record one use; None if allowed, else seconds until enough of the window frees up."""
        limit = self.limits[bucket]
        now = self._clock()
        with self._lock:
            window = self._used.setdefault((bucket, user), deque())
            while window and window[0][0] <= now - QUOTA_WINDOW_SECONDS:
                window.popleft()
            used = sum(c for _, c in window)
            if used + cost > limit:
                self.exceeded[bucket] = self.exceeded.get(bucket, 0) + 1
                oldest = window[0][0] if window else now
                return max(0.0, oldest + QUOTA_WINDOW_SECONDS - now)
            window.append((now, cost))
            return None

    def usage(self) -> dict[str, dict[str, int]]:
        """bucket -> user -> units used in the current window (for inspection)."""
        now = self._clock()
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (bucket, user), window in self._used.items():
                used = sum(c for t, c in window if t > now - QUOTA_WINDOW_SECONDS)
                out.setdefault(bucket, {})[user] = used
        return out
