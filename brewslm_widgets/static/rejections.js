// RejectionTable view: counts by reason, expandable examples, bulk-drop per reason, commit.

function renderRejections({ model, el }) {
  const root = h("div", { class: "bsl bsl-rejections" });
  el.append(root);
  const track = tracker(model, root);
  const open = new Set();

  function draw() {
    const s = model.get("summary");
    const groups = model.get("groups");
    const committed = model.get("committed");
    const event = model.get("commit_event");
    const rows = [];
    for (const g of groups) {
      rows.push(h("tr", { class: `bsl-group${g.dropped ? " bsl-group-dropped" : ""}`, "data-reason": g.reason },
        h("td", { class: "bsl-reason" }, g.reason),
        h("td", { class: "bsl-group-count" }, String(g.count)),
        h("td", { class: "bsl-note" }, g.description),
        h("td", {},
          g.examples.length
            ? h("button", { class: "bsl-toggle", onclick: () => { open.has(g.reason) ? open.delete(g.reason) : open.add(g.reason); draw(); } },
                open.has(g.reason) ? "Hide examples" : `Examples (${g.examples.length})`)
            : null,
          g.dropped
            ? h("button", { class: "bsl-undrop", onclick: () => track.send({ type: "undrop", reason: g.reason }) }, "Show again")
            : h("button", { class: "bsl-drop", onclick: () => track.send({ type: "drop", reason: g.reason }) }, "Drop from sample"),
          g.dropped ? h("span", { class: "bsl-muted" }, " dropped from the sample; count kept") : null,
        )));
      if (open.has(g.reason) && !g.dropped) {
        rows.push(h("tr", { class: "bsl-examples", "data-reason": g.reason },
          h("td", { colspan: 4 }, g.examples.map((ex) =>
            h("div", { class: "bsl-example" },
              h("div", {}, h("b", {}, `row ${ex.row_index}: `), ex.detail),
              h("pre", { class: "bsl-pre" }, pretty(ex.raw)))))));
      }
    }
    const sample = model.get("accepted_sample");
    const commitArea = model.get("readonly") ? null : committed.import_id
      ? h("div", { class: "bsl-committed" },
          h("div", {}, `Committed ${committed.accepted} rows (${committed.rejected} rejected) as ${committed.import_id}.`),
          h("div", { class: "bsl-commit-event", "data-reason": event.reason_code || "" },
            "Event written: ", h("b", { class: "bsl-reason" }, event.reason_code || ""),
            ` #${event.id ?? ""} · ${event.stage || ""} · ${event.severity || ""}`),
          h("details", { class: "bsl-commit-details" },
            h("summary", {}, "the whole event (JSON)"),
            h("pre", { class: "bsl-pre bsl-commit-json" }, pretty(event))))
      : h("div", { class: "bsl-actions" },
          model.get("needs_force")
            ? h("label", {}, h("input", {
                type: "checkbox", class: "bsl-force-box", checked: model.get("force"),
                onchange: (e) => { model.set("force", e.target.checked); model.save_changes(); },
              }), ` Force (confidence ${model.get("confidence").toFixed(2)} is below the threshold)`)
            : null,
          h("button", { class: "bsl-commit", disabled: model.get("busy"), onclick: () => track.send({ type: "commit" }) },
            `Commit ${s.accepted ?? ""} rows`));

    fill(root,
      h("div", { class: "bsl-title" },
        committed.import_id ? `Committed import ${committed.import_id}: ${model.get("shape")} (its audit)` : `Dry run: ${model.get("shape")}`,
        h("span", { class: "bsl-count" }, model.get("locator"))),
      h("div", { class: "bsl-summary" },
        h("span", { class: "bsl-total" }, `${s.total ?? 0} rows`), " · ",
        h("span", { class: "bsl-accepted" }, `${s.accepted ?? 0} accepted`), " · ",
        h("span", { class: "bsl-rejected" }, `${s.rejected ?? 0} rejected`),
        s.sentinel ? ` (${s.sentinel} unparseable)` : "",
        h("span", { class: "bsl-muted" }, ` · config ${s.config_id || ""}`)),
      errorLine(model),
      groups.length
        ? h("table", { class: "bsl-table" },
            h("thead", {}, h("tr", {}, ["reason", "rows", "what it means", ""].map((c) => h("th", {}, c)))),
            h("tbody", {}, rows))
        : h("div", { class: "bsl-empty" }, "No rejected rows."),
      h("details", { class: "bsl-sample" },
        h("summary", {}, `Accepted sample (${sample.length} rows)`),
        h("pre", { class: "bsl-pre" }, sample.map((r) => `${r.row_index}: ${JSON.stringify(r.record)}`).join("\n"))),
      commitArea,
    );
    track.settle();
  }

  for (const name of ["groups", "summary", "committed", "error", "last_action", "force"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}

export default { render: renderRejections };
