"""The dashboard's widgets: the runs table, the journal timeline, the status counts, the worker banner."""

from .journal_view import JournalTimeline
from .run_table import RunTable
from .status_counts import StatusCounts
from .worker_banner import WorkerBanner

__all__ = ["JournalTimeline", "RunTable", "StatusCounts", "WorkerBanner"]
