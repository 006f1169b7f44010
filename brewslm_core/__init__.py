"""BrewSLM core engine. Heavy libraries (torch, transformers) are imported lazily by stages."""

from .project import Project, ProjectError
from .registry import Registry, UnknownNameError

__version__ = "0.1.0"

__all__ = ["Project", "ProjectError", "Registry", "UnknownNameError", "__version__"]
