"""IntrospectionPicker: ranked shape hypotheses; pick one, edit its field map. Commits nothing."""

from __future__ import annotations

from typing import Any

import traitlets as t

from ._base import BrewWidget, static_text


class IntrospectionPicker(BrewWidget):
    """Shows ``brewslm_core.introspect.introspect(locator)`` best first and lets a person choose.

    Nothing is chosen until someone clicks (the engine never auto-picks). ``.mapping`` is the
    chosen ``ProposedMapping`` with the edited field map; ``.force`` is the force checkbox, which
    only exists when the chosen hypothesis is below the force threshold.
    """

    _esm = static_text("common.js", "picker.js")

    locator = t.Unicode("").tag(sync=True)
    hypotheses = t.List(t.Dict()).tag(sync=True)
    selected = t.Int(-1).tag(sync=True)  # -1: nothing chosen yet
    field_map = t.Dict().tag(sync=True)
    force = t.Bool(False).tag(sync=True)
    needs_force = t.Bool(False).tag(sync=True)
    threshold = t.Float(0.8).tag(sync=True)
    chosen = t.Dict().tag(sync=True)  # the kernel's .mapping as JSON, echoed back to the view

    def __init__(self, locator: str, *, project: Any = None, n: int = 20, **kwargs: Any) -> None:
        from brewslm_core.contracts import FORCE_THRESHOLD

        super().__init__(locator=str(locator), threshold=FORCE_THRESHOLD, **kwargs)
        self.project = project
        self.n = n
        self._hypotheses: list[Any] = []
        self.observe(self._selected_changed, names=["selected"])
        self.observe(self._edited, names=["field_map", "force"])
        self.reload()

    # ---- Python API -----------------------------------------------------------------
    @property
    def hypotheses_objects(self) -> list[Any]:
        """The engine's ShapeHypothesis objects, best first."""
        return list(self._hypotheses)

    @property
    def mapping(self):  # -> ProposedMapping | None
        """The chosen ProposedMapping with the edited field map, or None before a choice."""
        from brewslm_core.contracts import ProposedMapping

        if not 0 <= self.selected < len(self._hypotheses):
            return None
        base = self._hypotheses[self.selected].mapping
        return ProposedMapping(
            shape=base.shape,
            field_map={k: v for k, v in self.field_map.items() if v},
            confidence=base.confidence,
            options=base.options,
        )

    def reload(self) -> None:
        """Introspect the source again (e.g. after the file changed); clears the choice."""
        self._guarded(self._introspect)

    def select(self, index_or_shape: int | str) -> None:
        """Choose a hypothesis by rank or by shape name (the same as clicking it)."""
        if isinstance(index_or_shape, str):
            shapes = [h.shape for h in self._hypotheses]
            if index_or_shape not in shapes:
                raise ValueError(f"no hypothesis for shape {index_or_shape!r}; ranked: {shapes}")
            index_or_shape = shapes.index(index_or_shape)
        self.selected = int(index_or_shape)

    # ---- engine calls ---------------------------------------------------------------
    def _introspect(self) -> None:
        from brewslm_core.introspect import introspect

        found = introspect(self.locator, n=self.n, project=self.project)
        self._hypotheses = list(found)
        with self.hold_sync():
            self.selected = -1
            self.hypotheses = [
                {
                    "shape": h.shape,
                    "confidence": float(h.confidence),
                    "rationale": h.rationale,
                    "field_map": dict(h.mapping.field_map),
                    "options": h.mapping.to_dict().get("options") or {},
                }
                for h in self._hypotheses
            ]

    def _selected_changed(self, change: Any) -> None:
        index = change["new"]
        with self.hold_sync():
            if not 0 <= index < len(self._hypotheses):
                self.selected = -1
                self.field_map, self.needs_force, self.force = {}, False, False
            else:
                hyp = self._hypotheses[index]
                self.field_map = dict(hyp.mapping.field_map)
                self.needs_force = float(hyp.confidence) < self.threshold
                self.force = False  # a new choice never inherits an earlier override
            self._echo()

    def _edited(self, _change: Any) -> None:
        if self.force and not self.needs_force:
            self.force = False  # force only exists below the threshold
        self._echo()

    def _echo(self) -> None:
        mapping = self.mapping
        self.chosen = {} if mapping is None else {**mapping.to_dict(), "force": self.force}

    def _on_reload(self, _content: dict) -> None:
        self._introspect()
