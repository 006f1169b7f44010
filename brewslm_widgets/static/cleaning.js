// CleaningPanel view: start button, progress bar from task polling, then the report.

function renderCleaning({ model, el }) {
  const root = h("div", { class: "bsl bsl-cleaning" });
  el.append(root);
  const track = tracker(model, root);

  function kv(title, obj, cls) {
    const entries = Object.entries(obj || {});
    return h("div", { class: cls },
      h("div", { class: "bsl-title" }, title),
      entries.length
        ? h("table", { class: "bsl-table bsl-kv" }, h("tbody", {},
            entries.map(([k, v]) => h("tr", { "data-key": k }, h("td", {}, k), h("td", {}, fmt(v))))))
        : h("div", { class: "bsl-empty" }, "none"));
  }

  // Bars with a y axis (rows) and an x axis (score 0-1); each bar's count on hover and on top.
  function histogram(hist, max) {
    const counts = (hist.counts || []).map((c) => Math.round(c));
    const edges = hist.edges || [];
    if (!counts.length) return h("div", { class: "bsl-empty" }, "no quality scores");
    const minQ = (model.get("report").config || {}).min_quality;
    return h("figure", { class: "bsl-histfig" },
      h("figcaption", { class: "bsl-title" }, "Quality score histogram",
        h("span", { class: "bsl-count" }, minQ !== undefined ? `rows below ${minQ} are outliers` : "")),
      h("div", { class: "bsl-hist-area" },
        h("div", { class: "bsl-hist-y" }, h("span", {}, String(Math.round(max))), h("span", {}, "0")),
        h("div", { class: "bsl-hist" }, counts.map((c, i) =>
          h("div", { class: "bsl-hist-col", title: `score ${fmt(edges[i])}–${fmt(edges[i + 1])}: ${c} rows` },
            h("span", { class: "bsl-hist-n" }, c ? String(c) : ""),
            h("div", { class: "bsl-hist-bar", style: { height: `${(100 * c) / max}%` } }))))),
      h("div", { class: "bsl-hist-x" },
        h("span", {}, fmt(edges[0])), h("span", {}, "quality score →"), h("span", {}, fmt(edges[edges.length - 1]))),
      h("div", { class: "bsl-hist-ylabel bsl-muted" }, "bar height = rows in that score range"));
  }

  function draw() {
    const state = model.get("state");
    const running = state === "queued" || state === "running";
    const total = model.get("total");
    const hist = model.get("quality_hist");
    const max = Math.max(1, ...(hist.counts || []));
    root.dataset.state = state;
    fill(root,
      h("div", { class: "bsl-title" }, "Clean", h("span", { class: "bsl-count" }, model.get("task_id") || (Object.keys(model.get("report")).length ? "last report" : "not started"))),
      h("div", { class: "bsl-actions" },
        model.get("readonly") ? null : h("button", { class: "bsl-start", disabled: running, onclick: () => track.send({ type: "start" }) }, "Start clean"),
        running && !model.get("readonly") ? h("button", { class: "bsl-cancel", onclick: () => track.send({ type: "cancel" }) }, "Cancel") : null,
        h("progress", { class: "bsl-progress", max: total || 1, value: total ? model.get("done") : (state === "succeeded" ? 1 : 0) }),
        h("span", { class: "bsl-state" }, state ? `${state} ${total ? `${model.get("done")}/${total}` : ""} ${model.get("message")}` : "")),
      errorLine(model),
      Object.keys(model.get("report")).length
        ? h("div", { class: "bsl-report" },
            h("div", { class: "bsl-headline" },
              `${model.get("report").input_rows} rows in · ${model.get("report").kept_rows} kept · ` +
              `${model.get("report").removed_rows} removed · ${model.get("report").chunks} chunks`,
              model.get("report").blocked ? h("b", { class: "bsl-blocked" }, " · BLOCKED by the PII policy") : ""),
            kv("Removed by reason", model.get("removed_by_reason"), "bsl-removed"),
            kv("PII findings by type", model.get("pii_by_type"), "bsl-pii"),
            histogram(hist, max))
        : null,
    );
    track.settle();
  }

  for (const name of ["state", "done", "total", "message", "report", "error", "last_action"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}

export default { render: renderCleaning };
