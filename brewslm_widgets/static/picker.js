// IntrospectionPicker view: ranked hypotheses with confidence bars; choose, edit the field map.

function renderPicker({ model, el }) {
  const root = h("div", { class: "bsl bsl-picker" });
  el.append(root);
  const track = tracker(model, root);
  let t0 = null;

  function choose(i) {
    t0 = performance.now();
    root.dataset.pending = "select";
    model.set("selected", i);
    model.save_changes();
  }

  function editField(key, value) {
    const fm = { ...model.get("field_map") };
    fm[key] = value;
    t0 = performance.now();
    model.set("field_map", fm);
    model.save_changes();
  }

  function draw() {
    const hyps = model.get("hypotheses");
    const sel = model.get("selected");
    const threshold = model.get("threshold");
    const cards = hyps.map((hyp, i) => {
      const pct = Math.round(hyp.confidence * 100);
      return h(
        "div",
        {
          class: `bsl-hyp${i === sel ? " bsl-selected" : ""}`,
          "data-shape": hyp.shape,
          "data-rank": String(i),
          onclick: () => choose(i),
        },
        h("div", { class: "bsl-hyp-head" },
          h("input", { type: "radio", name: `bsl-hyp-${model.cid || ""}`, checked: i === sel }),
          h("span", { class: "bsl-shape" }, hyp.shape),
          h("div", { class: `bsl-bar${hyp.confidence < threshold ? " bsl-low" : ""}`, title: `${pct}%` },
            h("div", { style: { width: `${pct}%` } })),
          h("span", { class: "bsl-confidence" }, hyp.confidence.toFixed(2)),
        ),
        h("div", { class: "bsl-rationale" }, hyp.rationale),
      );
    });

    let editor = null;
    if (sel >= 0 && sel < hyps.length) {
      const fm = model.get("field_map");
      const keys = Object.keys({ ...hyps[sel].field_map, ...fm });
      editor = h("div", { class: "bsl-fieldmap" },
        h("div", { class: "bsl-title" }, "Field map", h("span", { class: "bsl-muted" }, "canonical field ← source field")),
        h("table", { class: "bsl-table bsl-kv" },
          h("tbody", {}, keys.map((k) => h("tr", {},
            h("td", {}, k),
            h("td", {}, h("input", {
              class: `bsl-field bsl-field-${k}`,
              value: fm[k] || "",
              onchange: (e) => editField(k, e.target.value),
            })))))),
        model.get("needs_force")
          ? h("label", { class: "bsl-force" },
              h("input", {
                type: "checkbox",
                class: "bsl-force-box",
                checked: model.get("force"),
                onchange: (e) => { t0 = performance.now(); model.set("force", e.target.checked); model.save_changes(); },
              }),
              ` Force: confidence is below ${threshold.toFixed(2)}, commit anyway`)
          : null,
      );
    }

    const chosen = model.get("chosen");
    fill(root,
      h("div", { class: "bsl-title" }, "Shape hypotheses",
        h("span", { class: "bsl-count" }, model.get("locator")),
        h("button", { class: "bsl-reload", onclick: () => track.send({ type: "reload" }) }, "Re-introspect")),
      errorLine(model),
      hyps.length ? cards : h("div", { class: "bsl-empty" }, "No hypotheses."),
      editor,
      h("div", { class: "bsl-chosen", "data-shape": chosen.shape || "" },
        chosen.shape
          ? h("span", {}, `Chosen in the kernel: ${chosen.shape} (${chosen.confidence.toFixed(2)})${chosen.force ? ", forced" : ""}. Nothing is committed here.`)
          : h("span", { class: "bsl-muted" }, "Nothing chosen yet: click a hypothesis.")),
    );
    // The kernel's echo of .mapping closes the round trip for a click on a card.
    if (t0 !== null) {
      root.dataset.rttMs = (performance.now() - t0).toFixed(1);
      root.dataset.pending = "";
      t0 = null;
    }
    track.settle();
  }

  model.on("change:chosen", draw);
  model.on("change:hypotheses", draw);
  model.on("change:needs_force", draw);
  model.on("change:error", draw);
  model.on("change:last_action", draw);
  draw();
}

export default { render: renderPicker };
