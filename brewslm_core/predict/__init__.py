"""Predict stage: a trained run, rebuilt from its folder alone, answers new inputs.

    loaded = load_run(project, "exp-1a2b3c4d")        # handler + model (eval, CPU) + tokenizer
    predict(project, "exp-1a2b3c4d", ["my card was declined"])
    model, tokenizer = merged_causal_lm(loaded)        # generative tasks: LoRA merged in

torch/transformers load lazily: importing this package is cheap.
"""

from .load import LoadedRun, RunNotLoadable, load_run, merged_causal_lm, read_plan
from .run import PredictInputError, as_rows, predict, predict_loaded

__all__ = [
    "LoadedRun",
    "PredictInputError",
    "RunNotLoadable",
    "as_rows",
    "load_run",
    "merged_causal_lm",
    "predict",
    "predict_loaded",
    "read_plan",
]
