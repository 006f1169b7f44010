"""BrewSLM core engine. Heavy libraries (torch, transformers) are imported lazily by stages."""

from .common.quiet import quiet_optional_backends
from .project import Project, ProjectError
from .registry import Registry, UnknownNameError

quiet_optional_backends()  # optional-backend import noise (bitsandbytes' CPU kernels) stays out

__version__ = "0.1.0"

__all__ = ["Project", "ProjectError", "Registry", "UnknownNameError", "__version__"]
