"""One mapper per shape: source row (dict) -> canonical record (see shapes.py), or RowReject.

A mapper is a plain function ``(row, field_map, options, base_dir) -> dict`` registered by
shape name in ``MAPPERS``. ``field_map`` maps canonical field -> source path; ``options``
holds shape switches (label_set, role_key, image_template ...).
"""

from . import alignment, chat, extraction, labels, media  # noqa: F401  (they register)
from .base import DEFAULT_ROLE_MAP, MAPPERS, Mapper, to_messages
from .media import media_path, reset_media_cache

__all__ = ["DEFAULT_ROLE_MAP", "MAPPERS", "Mapper", "media_path", "reset_media_cache",
           "to_messages"]
