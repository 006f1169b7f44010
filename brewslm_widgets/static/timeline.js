// EventTimeline view: filters + SQL box + a table whose rows expand to their payload.

function renderTimeline({ model, el }) {
  const root = h("div", { class: "bsl bsl-timeline" });
  el.append(root);
  const track = tracker(model, root);
  const open = new Set(); // expanded row ids are view state only
  let sqlDraft = model.get("sql");

  function setFilter(name, value) {
    model.set(name, value);
    model.save_changes();
  }

  function select(name, options, value) {
    return h(
      "select",
      { class: `bsl-filter-${name}`, onchange: (e) => setFilter(name, e.target.value) },
      h("option", { value: "" }, `any ${name}`),
      options.map((o) => h("option", { value: o, selected: o === value }, o)),
    );
  }

  function textFilter(name, placeholder) {
    return h("input", {
      class: `bsl-filter-${name}`,
      type: "search",
      placeholder,
      value: model.get(name),
      onchange: (e) => setFilter(name, e.target.value),
    });
  }

  function draw() {
    const columns = model.get("columns");
    const rows = model.get("rows");
    const idAt = columns.indexOf("id");
    const sevAt = columns.indexOf("severity");
    const payloadAt = columns.indexOf("payload");
    // Leave out what says nothing here: the payload (opens per row), ids of the project, the
    // store's own insert time, and columns empty in every row shown.
    const shown = columns.filter((c, at) => !["payload", "project_id", "created_at"].includes(c)
      && (model.get("sql") || rows.some((row) => row[at] !== null && row[at] !== "")));

    const hadFocus = document.activeElement && document.activeElement.classList.contains("bsl-sql")
      && root.contains(document.activeElement);
    const runSql = () => track.send({ type: "sql", sql: sqlDraft });
    const sqlBox = h("textarea", {
      class: "bsl-sql",
      rows: 3,
      spellcheck: "false",
      title: "SQL over run_events (DuckDB). Ctrl+Enter runs it.",
      placeholder: "e.g. SELECT stage, count(*) FROM run_events GROUP BY stage  (Ctrl+Enter runs)",
      oninput: (e) => (sqlDraft = e.target.value),
      onkeydown: (e) => {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          e.stopPropagation(); // JupyterLab would run the cell instead
          runSql();
        }
      },
    });
    sqlBox.value = sqlDraft; // a textarea's text is its value, not a "value" attribute
    const controls = h(
      "div",
      { class: "bsl-controls" },
      select("stage", model.get("stages"), model.get("stage")),
      select("severity", model.get("severities"), model.get("severity")),
      textFilter("run_id", "run id"),
      textFilter("text", "search summary / payload"),
      h("button", { class: "bsl-refresh", onclick: () => track.send({ type: "refresh" }) }, "Refresh"),
    );
    const sqlRow = h(
      "div",
      { class: "bsl-sql-row" },
      sqlBox,
      h("button", { class: "bsl-run-sql bsl-primary", onclick: runSql, title: "Ctrl+Enter" }, "Run SQL"),
      model.get("sql")
        ? h("button", { class: "bsl-clear-sql", onclick: () => { sqlDraft = ""; track.send({ type: "sql", sql: "" }); } }, "Back to filters")
        : null,
    );

    const body = [];
    rows.forEach((row, i) => {
      const key = idAt >= 0 ? String(row[idAt]) : String(i);
      const sev = sevAt >= 0 ? row[sevAt] : "";
      const hasPayload = payloadAt >= 0;
      body.push(
        h(
          "tr",
          {
            class: `bsl-row bsl-sev-${sev || "none"}${hasPayload ? " bsl-expandable" : ""}`,
            "data-id": key,
            onclick: hasPayload ? () => { open.has(key) ? open.delete(key) : open.add(key); draw(); } : null,
          },
          shown.map((c) => {
            const v = row[columns.indexOf(c)];
            const cls = c === "reason_code" && v ? "bsl-reason" : `bsl-col-${c}`;
            const text = c === "ts" && typeof v === "string" ? v.replace("T", " ").replace(/\.\d+Z?$|Z$/, "") : fmt(v);
            return h("td", { class: cls, title: c === "ts" ? v : null }, text);
          }),
        ),
      );
      if (hasPayload && open.has(key)) {
        body.push(
          h("tr", { class: "bsl-payload-row" },
            h("td", { colspan: shown.length }, h("pre", { class: "bsl-payload" }, pretty(row[payloadAt])))),
        );
      }
    });

    const table = h(
      "table",
      { class: "bsl-table" },
      h("thead", {}, h("tr", {}, shown.map((c) => h("th", {}, c)))),
      h("tbody", {}, body),
    );
    fill(root,
      h("div", { class: "bsl-title" }, "Run events", h("span", { class: "bsl-count" }, `${model.get("total")} ${model.get("total") === 1 ? "row" : "rows"}`),
        model.get("busy") ? h("span", { class: "bsl-busy" }, "working…") : null),
      controls,
      sqlRow,
      errorLine(model),
      rows.length ? table : h("div", { class: "bsl-empty" }, model.get("error") ? "" : "No events match."),
    );
    if (hadFocus) {
      const box = root.querySelector(".bsl-sql");
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    }
    track.settle();
  }

  model.on("change:rows", draw);
  model.on("change:busy", draw);
  model.on("change:error", draw);
  model.on("change:sql", () => { sqlDraft = model.get("sql"); draw(); });
  model.on("change:last_action", draw);
  draw();
}

export default { render: renderTimeline };
