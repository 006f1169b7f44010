"""`python -m brewslm_core.cli …` (how launchers start ranks): the same app as `brewslm`."""

from . import app

app()
