"""Thin anywidget widgets over brewslm_core: they sync traits and forward clicks, nothing more."""

from .timeline import EventTimeline

__all__ = ["EventTimeline"]
