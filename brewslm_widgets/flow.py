"""ImportFlow: the picker, and the dry-run table of whatever hypothesis is chosen in it."""

from __future__ import annotations

from typing import Any

import ipywidgets

from .picker import IntrospectionPicker
from .rejections import RejectionTable


class ImportFlow(ipywidgets.VBox):
    """Introspect -> choose -> dry run -> (explicit click) commit, for one source.

    Each choice or field-map edit in the picker builds a fresh RejectionTable for the chosen
    mapping; ``.table`` is the current one (None until a choice).
    """

    def __init__(self, project: Any, locator: str, *, n: int = 20, **table_kwargs: Any) -> None:
        self.project = project
        self.locator = str(locator)
        self.picker = IntrospectionPicker(locator, project=project, n=n)
        self.table: RejectionTable | None = None
        self._table_kwargs = table_kwargs
        self._hint = ipywidgets.HTML("<i>Choose a hypothesis to see its dry run.</i>")
        super().__init__(children=[self.picker, self._hint])
        self.picker.observe(self._chosen, names=["chosen"])

    def _chosen(self, _change: Any) -> None:
        mapping = self.picker.mapping
        if mapping is None:
            return
        if self.table is not None and self.table.committed:
            return  # keep a committed table on screen; build a new flow to import again
        old, self.table = self.table, RejectionTable(
            self.project, self.locator, mapping, force=self.picker.force, **self._table_kwargs
        )
        self.children = [self.picker, self.table]
        if old is not None:
            old.close()
