"""The tarry dashboard: a Textual app over ``tarry.Client``.

``DashboardApp(db_path)`` (or ``DashboardApp(client)``) watches a database that a worker
is running; ``tarry dashboard --db PATH`` and ``tarry dev APP --db PATH`` start it.
"""

from .app import DashboardApp

__all__ = ["DashboardApp"]
