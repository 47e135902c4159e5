"""Retry: how many times a step is attempted, and how long to wait in between."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InvalidArgument, NonRetryableError

__all__ = ["Retry"]


def _exception_types(name: str, value: object) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise InvalidArgument(f"Retry.{name} must be an exception type or a tuple of them, not {value!r}")
    return types


@dataclass(frozen=True, slots=True)
class Retry:
    """Attempts of one step, with exponential backoff.

    The wait after the n-th failed attempt is ``initial * backoff ** (n - 1)`` seconds,
    capped at ``max_delay``. An exception is retried when it is an instance of
    ``retry_on`` and of none of ``non_retryable``; :class:`NonRetryableError` (raise it
    from a step) is never retried.

    Guarantees:
        Every failed attempt is committed to the journal (its error, when it ran, when the
        next one is due) before the wait starts, and the wait is durable: a run between
        attempts is suspended like ``ctx.sleep`` (in ``ctx.gather`` it waits in place), so
        a crash or restart mid-backoff neither forgets an attempt nor repeats one, and the
        next attempt starts at the committed time.

    Raises:
        InvalidArgument: a count below 1, a negative or infinite delay, a backoff below 1,
            or ``retry_on``/``non_retryable`` that are not exception types.
    """

    max_attempts: int = 3
    backoff: float = 2.0
    initial: float = 1.0
    max_delay: float = 60.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidArgument(f"Retry.max_attempts must be an int >= 1, not {self.max_attempts!r}")
        for name in ("initial", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidArgument(f"Retry.{name} must be a finite number of seconds >= 0, not {value!r}")
        if not isinstance(self.backoff, int | float) or not math.isfinite(self.backoff) or self.backoff < 1:
            raise InvalidArgument(f"Retry.backoff must be a finite number >= 1, not {self.backoff!r}")
        object.__setattr__(self, "retry_on", _exception_types("retry_on", self.retry_on))
        object.__setattr__(self, "non_retryable", _exception_types("non_retryable", self.non_retryable))

    @classmethod
    def coerce(cls, value: Retry | int | None, default: Retry | None = None) -> Retry:
        """``None`` -> ``default`` (or a single attempt); an int -> that many attempts."""
        if value is None:
            return default if default is not None else _ONCE
        if isinstance(value, Retry):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(max_attempts=value)
        raise InvalidArgument(f"retry must be a Retry or an int (max attempts), not {value!r}")

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failures before the next attempt."""
        return float(min(self.max_delay, self.initial * self.backoff ** (failed_attempts - 1)))

    def retries(self, exc: BaseException, failed_attempts: int) -> bool:
        """Whether another attempt follows this failure."""
        return (
            failed_attempts < self.max_attempts
            and isinstance(exc, self.retry_on)
            and not isinstance(exc, self.non_retryable)
            and not isinstance(exc, NonRetryableError)
        )


#: The policy of a step with no ``retry`` and no workflow default: one attempt.
_ONCE = Retry(max_attempts=1)
