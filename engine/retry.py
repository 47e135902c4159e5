"""RetryPolicy: how many times a step is attempted, and how long to wait in between."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InvalidArgument

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts of one step, with exponential backoff.

    The wait after the n-th failed attempt is ``initial_interval * backoff ** (n - 1)``,
    capped at ``max_interval``. An exception whose type is in ``non_retryable`` (or a
    subclass) fails the step at once. Retries happen inside the running process: a crash
    between attempts starts the step again from attempt 1 on recovery.

    Raises:
        InvalidArgument: a count below 1, a negative interval or a backoff below 1.
    """

    max_attempts: int = 1
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidArgument(f"RetryPolicy.max_attempts must be an int >= 1, not {self.max_attempts!r}")
        for name in ("initial_interval", "max_interval"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidArgument(f"RetryPolicy.{name} must be a finite number >= 0, not {value!r}")
        if not isinstance(self.backoff, int | float) or not math.isfinite(self.backoff) or self.backoff < 1:
            raise InvalidArgument(f"RetryPolicy.backoff must be a finite number >= 1, not {self.backoff!r}")

    @classmethod
    def coerce(cls, value: RetryPolicy | int | None, default: RetryPolicy | None = None) -> RetryPolicy:
        """``None`` -> ``default`` (or a single attempt); an int -> that many attempts."""
        if value is None:
            return default if default is not None else cls()
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(max_attempts=value)
        raise InvalidArgument(f"retry must be a RetryPolicy or an int (max attempts), not {value!r}")

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failures before the next attempt."""
        return float(min(self.max_interval, self.initial_interval * self.backoff ** (failed_attempts - 1)))

    def retries(self, exc: BaseException, failed_attempts: int) -> bool:
        """Whether another attempt follows this failure."""
        return failed_attempts < self.max_attempts and not isinstance(exc, self.non_retryable)
