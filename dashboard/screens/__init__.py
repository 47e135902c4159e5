"""The dashboard's screens and modals."""

from .confirm import ConfirmModal
from .engine_info import EngineScreen
from .help import HelpScreen
from .run_detail import RunDetailScreen
from .runs import RunsScreen
from .signal_modal import SignalModal
from .trigger_modal import TriggerModal

__all__ = [
    "ConfirmModal",
    "EngineScreen",
    "HelpScreen",
    "RunDetailScreen",
    "RunsScreen",
    "SignalModal",
    "TriggerModal",
]
