"""RejectionTable: the dry-run breakdown by reason, bulk-drop per reason, and the commit click."""

from __future__ import annotations

from typing import Any

import traitlets as t

from ._base import BrewWidget, as_json_value, frame_to_table, static_text


def _example(row: Any) -> dict[str, Any]:
    return {"row_index": row.row_index, "detail": row.detail, "raw": row.raw}


class RejectionTable(BrewWidget):
    """Dry run of ``locator`` read as ``mapping`` (a ProposedMapping), grouped by reason code.

    Dropping a reason re-runs the dry run with that reason in ``drop_reasons``: only the rendered
    sample changes, the counts stay. The commit button calls ``brewslm_core.mapping.commit`` and
    then shows the ``dataset_import_run`` event it wrote. ``readonly=True`` (dashboards) shows
    the breakdown of the source on its own (not against the rows already committed), no button.
    """

    _esm = static_text("common.js", "rejections.js")

    locator = t.Unicode("").tag(sync=True)
    shape = t.Unicode("").tag(sync=True)
    confidence = t.Float(1.0).tag(sync=True)
    needs_force = t.Bool(False).tag(sync=True)
    force = t.Bool(False).tag(sync=True)
    summary = t.Dict().tag(sync=True)  # total, accepted, rejected, sentinel, config_id
    groups = t.List(t.Dict()).tag(sync=True)  # reason, description, count, dropped, examples
    dropped_reasons = t.List(t.Unicode()).tag(sync=True)
    accepted_sample = t.List(t.Dict()).tag(sync=True)
    readonly = t.Bool(False).tag(sync=True)  # a report only: no commit button
    committed = t.Dict().tag(sync=True)  # CommitResult as JSON once committed
    commit_event = t.Dict().tag(sync=True)  # the dataset_import_run event row

    def __init__(
        self,
        project: Any,
        locator: str,
        mapping: Any,
        *,
        force: bool = False,
        sample_size: int = 20,
        examples_per_reason: int = 5,
        readonly: bool = False,
        **kwargs: Any,
    ) -> None:
        from brewslm_core.contracts import FORCE_THRESHOLD

        if mapping is None:
            raise ValueError("choose a mapping first (e.g. click a hypothesis in the picker)")
        super().__init__(
            locator=str(locator),
            shape=mapping.shape,
            confidence=float(mapping.confidence),
            needs_force=float(mapping.confidence) < FORCE_THRESHOLD,
            readonly=readonly,
            **kwargs,
        )
        self.force = bool(force) and self.needs_force
        self.project = project
        self.mapping = mapping
        self.sample_size = sample_size
        self.examples_per_reason = examples_per_reason
        self.report = None  # the engine's DryRunReport
        self.result = None  # the engine's CommitResult after a commit
        self._examples: dict[str, list[dict[str, Any]]] = {}  # last examples seen per reason
        self.refresh()

    # ---- Python API -----------------------------------------------------------------
    def refresh(self) -> None:
        self._guarded(self._dry_run)

    def drop(self, reason: str) -> None:
        """Hide a reason's rows from the rendered sample (its count stays)."""
        self._guarded(self._set_dropped, [*self.dropped_reasons, reason])

    def undrop(self, reason: str) -> None:
        self._guarded(self._set_dropped, [r for r in self.dropped_reasons if r != reason])

    def commit(self) -> Any:
        """Commit the rows (the explicit click); returns the CommitResult or raises."""
        self._guarded(self._commit)
        return self.result

    # ---- engine calls ---------------------------------------------------------------
    def _set_dropped(self, reasons: list[str]) -> None:
        from brewslm_core.contracts import ROW_REJECT_CODES

        unknown = [r for r in reasons if r not in ROW_REJECT_CODES]
        if unknown:
            raise ValueError(f"unknown reason code(s) {unknown}; known: {sorted(ROW_REJECT_CODES)}")
        self.dropped_reasons = list(dict.fromkeys(reasons))
        self._dry_run()

    def _dry_run(self) -> None:
        from brewslm_core.contracts import ROW_REJECT_CODES
        from brewslm_core.mapping import dry_run

        if self.committed:
            # After a commit the table is the import's audit: a new dry run against the project
            # would count the rows just written as duplicates of themselves.
            self._show_audit()
            return
        report = dry_run(
            self.locator,
            self.mapping.shape,
            dict(self.mapping.field_map),
            self.mapping.options,
            drop_reasons=tuple(self.dropped_reasons),
            sample_size=self.sample_size,
            examples_per_reason=self.examples_per_reason,
            project=None if self.readonly else self.project,
        )
        self.report = report
        examples = {g.reason: [_example(r) for r in g.examples] for g in report.groups}
        self._examples.update({k: v for k, v in examples.items() if v})
        dropped = set(report.dropped_reasons)
        groups = [
            {
                "reason": reason,
                "description": ROW_REJECT_CODES.get(reason, ""),
                "count": count,
                "dropped": reason in dropped,
                "examples": [] if reason in dropped else examples.get(reason, []),
            }
            for reason, count in sorted(report.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        with self.hold_sync():
            self.summary = {
                "total": report.total,
                "accepted": report.accepted,
                "rejected": report.rejected,
                "sentinel": report.sentinel,
                "config_id": report.config_id,
                "shape": report.shape,
            }
            self.groups = groups
            self.accepted_sample = [
                {"row_index": row.row_index, "record": row.record}
                for row in report.accepted_sample
            ]

    def _commit(self) -> None:
        from brewslm_core.mapping import commit

        if self.readonly:
            raise RuntimeError("this table is a read-only report; commit from a notebook")
        if self.committed:
            raise RuntimeError(
                f"already committed as {self.committed.get('import_id')}; "
                "build a new RejectionTable to import again"
            )
        result = commit(
            self.project,
            self.locator,
            self.mapping.shape,
            dict(self.mapping.field_map),
            self.mapping.options,
            force=self.force,
        )
        self.result = result
        frame = self.project.events.query(
            f"SELECT * FROM run_events WHERE id = {int(result.event_id)}"
        )
        columns, rows = frame_to_table(frame)
        event = dict(zip(columns, rows[0], strict=True)) if rows else {}
        if "payload" in event:
            event["payload"] = as_json_value(event["payload"])
        with self.hold_sync():
            self.committed = result.to_dict()
            self.commit_event = event
            self._show_audit()

    def _show_audit(self) -> None:
        """The committed import's own record: its counts by reason, examples as last seen."""
        from brewslm_core.contracts import ROW_REJECT_CODES
        from brewslm_core.mapping import read_imports

        import_id = self.committed.get("import_id")
        record = next((imp for imp in read_imports(self.project) if imp["import_id"] == import_id),
                      None)
        if record is None:
            raise RuntimeError(f"import {import_id} is not in the project's import log")
        by_reason = {str(k): int(v) for k, v in (record.get("by_reason") or {}).items()}
        dropped = set(self.dropped_reasons)
        with self.hold_sync():
            self.summary = {
                **self.summary,
                "total": int(record["accepted"]) + int(record["rejected"]),
                "accepted": int(record["accepted"]),
                "rejected": int(record["rejected"]),
                "config_id": record.get("config_id", self.summary.get("config_id")),
                "import_id": import_id,
            }
            self.groups = [
                {
                    "reason": reason,
                    "description": ROW_REJECT_CODES.get(reason, ""),
                    "count": count,
                    "dropped": reason in dropped,
                    "examples": [] if reason in dropped else self._examples.get(reason, []),
                }
                for reason, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
            ]

    @t.observe("force")
    def _observe_force(self, change: Any) -> None:
        if change["new"] and not self.needs_force:
            self.force = False

    # ---- front-end actions ----------------------------------------------------------
    def _on_drop(self, content: dict) -> None:
        self._set_dropped([*self.dropped_reasons, str(content.get("reason", ""))])

    def _on_undrop(self, content: dict) -> None:
        reason = str(content.get("reason", ""))
        self._set_dropped([r for r in self.dropped_reasons if r != reason])

    def _on_commit(self, _content: dict) -> None:
        self._commit()
