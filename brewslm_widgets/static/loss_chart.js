// LossChart view: plotly.js (shipped by the plotly Python package, carried in the widget state).

function injectPlotly(source) {
  return new Promise((resolve, reject) => {
    // plotly.min.js is a UMD bundle: hide an AMD loader so it sets window.Plotly.
    const savedDefine = window.define;
    window.define = undefined;
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    const script = document.createElement("script");
    script.src = url;
    script.onload = () => { window.define = savedDefine; URL.revokeObjectURL(url); resolve(window.Plotly); };
    script.onerror = (e) => { window.define = savedDefine; reject(new Error(`plotly.js failed to load: ${e}`)); };
    document.head.append(script);
  });
}

// One copy per page: the source travels in the widget's state, so no kernel round trip is
// needed (under Run All the kernel is busy until training ends).
function loadPlotly(model) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__brewslmPlotly) {
    const source = model.get("_plotly_js");
    if (!source) return Promise.reject(new Error("plotly.js missing from the widget state"));
    window.__brewslmPlotly = injectPlotly(source);
  }
  return window.__brewslmPlotly;
}

const PALETTE = ["#1a73e8", "#d93025", "#188038", "#e37400", "#9334e6", "#12b5cb"];

function chartTraces(model) {
  const runs = model.get("run_ids");
  return model.get("series").map((s) => {
    const colour = PALETTE[runs.indexOf(s.run) % PALETTE.length];
    const trace = { x: s.x, y: s.y, name: `${s.run} ${s.series.replace("_", " ")}`, type: "scatter" };
    if (s.series === "loss") Object.assign(trace, { mode: "lines", line: { color: colour } });
    if (s.series === "eval_loss") Object.assign(trace, { mode: "lines+markers", line: { color: colour, dash: "dash" } });
    if (s.series === "lr") Object.assign(trace, { mode: "lines", yaxis: "y2", line: { color: colour, dash: "dot", width: 1 } });
    return trace;
  });
}

async function renderLossChart({ model, el }) {
  const root = h("div", { class: "bsl bsl-loss" });
  const plot = h("div", { class: "bsl-plot" });
  const status = h("div", { class: "bsl-muted" }, "loading plotly.js…");
  root.append(plot, status);
  el.append(root);
  let Plotly;
  try {
    Plotly = await loadPlotly(model);
  } catch (err) {
    fill(status, h("div", { class: "bsl-error" }, String(err)));
    return;
  }
  const layout = {
    title: { text: model.get("title") },
    xaxis: { title: { text: "step" } },
    yaxis: { title: { text: "loss" } },
    yaxis2: { title: { text: "learning rate" }, overlaying: "y", side: "right", showgrid: false,
      tickformat: ".1e", rangemode: "tozero" },
    legend: { orientation: "h", x: 0, y: -0.22, yanchor: "top" },
    height: 400,
    margin: { l: 55, r: 75, t: 40, b: 80 },
  };
  function draw() {
    const traces = chartTraces(model);
    Plotly.react(plot, traces, layout, { displaylogo: false, responsive: true });
    const trainPoints = model.get("series").filter((s) => s.series === "loss")
      .reduce((n, s) => n + s.x.length, 0);
    root.dataset.points = String(trainPoints);
    fill(status, model.get("error") ? errorLine(model) : `${trainPoints} train steps · ${model.get("run_ids").join(", ")}`);
  }
  model.on("change:series", draw);
  model.on("change:error", draw);
  draw();
}

export default { render: renderLossChart };
