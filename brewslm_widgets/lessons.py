"""What the lesson notebooks share: where a track's project lives, opt-in autopilot, checks in words.

A track keeps one project (``<lesson dir>/<track>/project``) so each lesson continues from the
last: lesson 02 commits what lesson 01 chose, lesson 03 cleans what lesson 02 committed. The
lesson dir is ``BREWSLM_LESSON_DIR`` or ``~/brewslm-lessons``.

Nothing is clicked for the learner unless ``BREWSLM_AUTOPILOT=1`` (CI's smoke runs set it, or
``BREWSLM_SMOKE=1``): under Run All the widgets wait for a person, and a check cell says what
is still to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SMOKE = os.environ.get("BREWSLM_SMOKE") == "1"  # CI: few steps, small samples
AUTOPILOT = SMOKE or os.environ.get("BREWSLM_AUTOPILOT") == "1"


class CheckFailed(AssertionError):
    """A check-yourself cell found something to fix; the message says what, in words."""


def check(ok: Any, message: str) -> None:
    """Raise CheckFailed(message) unless ``ok``: the message tells the learner what to do."""
    if not ok:
        raise CheckFailed(message)


def lesson_dir() -> Path:
    root = Path(os.environ.get("BREWSLM_LESSON_DIR") or Path.home() / "brewslm-lessons")
    root.mkdir(parents=True, exist_ok=True)
    return root


def track_dir(track: str) -> Path:
    path = lesson_dir() / track
    path.mkdir(parents=True, exist_ok=True)
    return path


def track_project(track: str, *, create: bool = False) -> Any:
    """The track's one project: opened when it exists, created only when ``create`` is set."""
    from brewslm_core import Project

    root = track_dir(track) / "project"
    if (root / "brewslm.toml").is_file():
        return Project.open(root)
    if not create:
        raise CheckFailed(f"no {track} project yet at {root}: run the track's first lesson first "
                          "(it creates the project every later lesson continues)")
    return Project.create(root)


def save_choice(track: str, locator: str, mapping: Any) -> Path:
    """Keep the hypothesis chosen in lesson 01 for the next lesson."""
    path = track_dir(track) / "choice.json"
    path.write_text(json.dumps({"locator": locator, "mapping": mapping.to_dict()}, indent=2),
                    encoding="utf-8")
    return path


def load_choice(track: str) -> tuple[str, Any] | None:
    """(locator, ProposedMapping) chosen in lesson 01, or None when nothing was chosen yet."""
    from brewslm_core.contracts import ProposedMapping

    path = track_dir(track) / "choice.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    m = data["mapping"]
    mapping = ProposedMapping(shape=m["shape"], field_map=dict(m["field_map"]),
                              confidence=float(m["confidence"]), options=m.get("options"))
    return data["locator"], mapping


def remember_choice(track: str, picker: Any) -> None:
    """Save the picker's choice every time the learner clicks a hypothesis (in the kernel)."""

    def saved(_change: Any) -> None:
        if picker.mapping is not None:
            save_choice(track, picker.locator, picker.mapping)

    picker.observe(saved, names=["chosen"])
    saved(None)


def quiet() -> None:
    """Keep a lesson's outputs to what it teaches: no weight-loading bars, no optional-backend noise.

    Training runs on a thread, so its progress bars would land in whatever cell is running
    (often the loss chart's); bitsandbytes warns about CPU kernels that the lessons never use.
    """
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", message=r".*gemm_4bit.*")
    warnings.filterwarnings("ignore", message=r".*kernels-community.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("transformers", "bitsandbytes", "accelerate", "peft", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # huggingface_hub comes with transformers; without it nothing to hide
        pass
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def scratch_project(name: str) -> Any:
    """A new project for a lesson that stands alone (Track 2, Track 3): every run starts clean."""
    from brewslm_core import Project

    base = track_dir(name)
    n = 1 + max((int(p.name.split("-")[-1]) for p in base.glob("run-*") if p.name[4:].isdigit()),
                default=0)
    return Project.create(base / f"run-{n}")
