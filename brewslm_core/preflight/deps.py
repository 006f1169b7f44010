"""Which installed packages a run needs, and whether the installed versions are new enough."""

from __future__ import annotations

from dataclasses import dataclass

# Every run: the engine and the model loaders. Minimums are the versions whose APIs the code
# calls (fused CPU AdamW and torch.amp.GradScaler(device): torch 2.4; ``dtype=`` in
# from_pretrained: transformers 4.46 per pyproject).
BASE: dict[str, str] = {
    "torch": "2.4",
    "transformers": "4.46",
    "tokenizers": "0.19",
    "safetensors": "0.4",
    "psutil": "5.9",
}
LORA: dict[str, str] = {"peft": "0.13"}
# method "qlora": the 4-bit NF4 base (CPU forward + backward of Linear4bit measured with 0.50)
QLORA: dict[str, str] = {"bitsandbytes": "0.50"}
# The multi-process/multi-GPU launch in the plan, and the GGUF conversion of SmolLM2.
LAUNCH: dict[str, str] = {"accelerate": "1.0"}
# What Evaluate needs to score a task profile (missing ones only warn: training still runs).
SCORING: dict[str, dict[str, str]] = {
    "classification": {"scikit-learn": "1.4"},
    "safety": {"scikit-learn": "1.4"},
    "seq2seq": {"sacrebleu": "2.4", "rouge-score": "0.1.2"},
    "audio_transcription": {"jiwer": "3.0"},
}
# Extra packages a model family needs to be built at all.
FAMILY: dict[str, dict[str, str]] = {
    "smollm2": {"gguf": "0.10", "accelerate": "1.0"},
}
INSTALL_NAMES: dict[str, str] = {"torch": "torch (the CPU wheel: see the Makefile)"}


@dataclass(frozen=True)
class DependencyStatus:
    package: str
    required: str
    installed: str | None
    needed_for: str
    blocking: bool

    @property
    def ok(self) -> bool:
        return self.installed is not None and _at_least(self.installed, self.required)

    def fix(self) -> str:
        name = INSTALL_NAMES.get(self.package, self.package)
        return f"pip install '{name}>={self.required}'" if "(" not in name else f"install {name}"


def _at_least(installed: str, required: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(installed) >= Version(required)
    except InvalidVersion:  # a local build with an odd version string: trust it
        return True


def _installed(package: str) -> str | None:
    from importlib import metadata  # lazily: it costs ~0.1 s to import

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def required_packages(task_profile: str, method: str, family: str) -> list[tuple[str, str, str, bool]]:
    """(package, minimum version, what needs it, blocking) for one run."""
    out: list[tuple[str, str, str, bool]] = []
    out += [(p, v, "training engine", True) for p, v in BASE.items()]
    if method in ("lora", "qlora"):
        out += [(p, v, "LoRA adapters", True) for p, v in LORA.items()]
    if method == "qlora":
        out += [(p, v, "the 4-bit (qlora) base", True) for p, v in QLORA.items()]
    out += [(p, v, f"the {family} base model", True) for p, v in FAMILY.get(family, {}).items()]
    out += [(p, v, "multi-process launch", False) for p, v in LAUNCH.items()]
    out += [(p, v, f"scoring {task_profile}", False) for p, v in SCORING.get(task_profile, {}).items()]
    seen: dict[str, tuple[str, str, str, bool]] = {}
    for item in out:  # a package listed twice keeps its blocking entry
        if item[0] not in seen or (item[3] and not seen[item[0]][3]):
            seen[item[0]] = item
    return list(seen.values())


def check_dependencies(task_profile: str, method: str, family: str) -> list[DependencyStatus]:
    return [
        DependencyStatus(p, v, _installed(p), why, blocking)
        for p, v, why, blocking in required_packages(task_profile, method, family)
    ]
