"""A delimited row with more cells than the header is rejected, not silently mis-mapped."""

from __future__ import annotations

from importlib.resources import files

from brewslm_core.mapping import dry_run

INTENTS = {
    "order_status", "refund_request", "subscription_change", "brewing_help",
    "product_question", "shipping_address", "wholesale_inquiry", "complaint",
}


def test_bundled_demo_rejects_its_unquoted_comma_row() -> None:
    locator = f"csv:{files('brewslm_core') / 'data' / 'brew_intents.csv'}"
    report = dry_run(locator, "classification", sample_size=1000)
    assert report.by_reason.get("ragged_row") == 1
    assert report.accepted + report.rejected == report.total
    assert {row.record["label"] for row in report.accepted_sample} == INTENTS
    (group,) = [g for g in report.groups if g.reason == "ragged_row"]
    assert "beyond the header" in group.examples[0].detail


def test_ragged_row_kept_when_the_field_map_reads_extra_cells(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\nhello there,greet\nhi,again,greet\n", encoding="utf-8")
    plain = dry_run(f"csv:{path}", "classification", {"text": "text", "label": "label"})
    assert plain.by_reason == {"ragged_row": 1} and plain.accepted == 1
    # A user who knows the layout can map the spill-over column explicitly.
    explicit = dry_run(f"csv:{path}", "classification", {"text": "text", "label": "_extra.0"})
    assert explicit.by_reason.get("ragged_row") is None


def test_commit_keeps_the_rejection_breakdown(project) -> None:
    from brewslm_core.mapping import commit, read_imports

    locator = f"csv:{files('brewslm_core') / 'data' / 'brew_intents.csv'}"
    report = dry_run(locator, "classification")
    result = commit(project, locator, "classification")
    (imp,) = read_imports(project)
    assert imp["by_reason"] == report.by_reason and sum(imp["by_reason"].values()) == result.rejected
    event = project.events.get(result.event_id)
    assert event.payload["by_reason"] == report.by_reason
