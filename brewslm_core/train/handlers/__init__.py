"""Task handlers behind one protocol, picked by the manifest's task profile.

A new handler registers itself here with ``@HANDLERS.register("<task_profile>")`` (a class
whose instances satisfy ``TaskHandler``); the engine never names a handler.
"""

from __future__ import annotations

from ...registry import Registry
from .alignment import AlignmentHandler
from .audio import AudioTranscriptHandler
from .base import IGNORE, Example, HandlerHooks, TaskHandler, lay_out
from .classification import ClassificationHandler
from .qa import QAHandler
from .rag import RAGHandler
from .safety import SafetyHandler
from .seq2seq import Seq2SeqHandler
from .structured import StructuredExtractionHandler
from .vision import VisionLanguageHandler

HANDLERS: Registry[type] = Registry("task handler")
HANDLERS.register("classification")(ClassificationHandler)
HANDLERS.register("seq2seq")(Seq2SeqHandler)
HANDLERS.register("qa")(QAHandler)
HANDLERS.register("structured_extraction")(StructuredExtractionHandler)
HANDLERS.register("safety")(SafetyHandler)
HANDLERS.register("alignment")(AlignmentHandler)
HANDLERS.register("rag")(RAGHandler)
HANDLERS.register("audio_transcription")(AudioTranscriptHandler)
HANDLERS.register("vision_language")(VisionLanguageHandler)


def get_handler(task_profile: str) -> TaskHandler:
    """A fresh handler for the task profile (did-you-mean error for unknown profiles)."""
    return HANDLERS.get(task_profile)()


__all__ = [
    "HANDLERS",
    "HandlerHooks",
    "IGNORE",
    "ClassificationHandler",
    "Example",
    "Seq2SeqHandler",
    "TaskHandler",
    "get_handler",
    "lay_out",
]
