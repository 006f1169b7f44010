"""What, besides its text, makes two rows different rows (the dedup steps group by it)."""

from __future__ import annotations

import json
from typing import Any


def beyond_text(shape: str, rec: dict[str, Any]) -> str:
    """Media paths, a chat's tools, a QA row's answers (labels are not: one text with two labels
    is a duplicate to clean)."""
    if shape == "vision_language":
        return json.dumps(rec.get("images", []))
    if shape == "audio_transcript":
        return str(rec.get("audio", ""))
    if rec.get("tools"):
        return json.dumps(rec["tools"], sort_keys=True, ensure_ascii=False)
    if shape == "extractive_qa":
        return json.dumps(rec.get("answers", []), sort_keys=True, ensure_ascii=False)
    return ""
