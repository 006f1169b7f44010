"""Autopilot: one command from a data file to an evaluated (and, when the gates pass, exported)
model, with every repair judged safe or refused and recorded under a parent run.

    result = autopilot(project, "csv:data.csv", "classification", train={"max_steps": 50})
    result.status, result.repairs, result.refusal, result.outputs
"""

from ..contracts.autopilot import AutopilotResult, AutopilotStep, Repair
from .pilot import MAX_DROP_SHARE, STEPS, autopilot, plan

__all__ = ["MAX_DROP_SHARE", "STEPS", "AutopilotResult", "AutopilotStep", "Repair", "autopilot", "plan"]
