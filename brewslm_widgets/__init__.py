"""Thin anywidget widgets over brewslm_core: they sync traits and forward clicks, nothing more."""

from .cleaning import CleaningPanel
from .flow import ImportFlow
from .loss_chart import LossChart
from .picker import IntrospectionPicker
from .rejections import RejectionTable
from .runs import RunsBoard
from .timeline import EventTimeline

__all__ = [
    "CleaningPanel",
    "EventTimeline",
    "ImportFlow",
    "IntrospectionPicker",
    "LossChart",
    "RejectionTable",
    "RunsBoard",
]
