"""The dashboard's widgets: the runs table, the journal timeline, the status counts."""

from .journal_view import JournalTimeline
from .run_table import RunTable
from .status_counts import StatusCounts

__all__ = ["JournalTimeline", "RunTable", "StatusCounts"]
