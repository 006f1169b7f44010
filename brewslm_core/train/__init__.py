"""Train stage: one engine, task handlers behind one protocol, picked by task profile.

    from brewslm_core.train import TrainConfig, train
    result = train(project, TrainConfig(task_profile="classification"), train_rows, eval_rows)

torch/transformers load lazily: importing this package is cheap.
"""

from .config import TrainConfig, TrainConfigError
from .engine import CANCEL_FILE, TrainResult, new_run_id, train
from .handlers import HANDLERS, TaskHandler, get_handler
from .runner import config_from_manifest, train_project
from .teacher import capture_teacher
from .trace import read_trace

__all__ = [
    "CANCEL_FILE",
    "HANDLERS",
    "TaskHandler",
    "TrainConfig",
    "TrainConfigError",
    "TrainResult",
    "capture_teacher",
    "config_from_manifest",
    "get_handler",
    "new_run_id",
    "read_trace",
    "train",
    "train_project",
]
