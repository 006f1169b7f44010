// Small DOM helpers shared by every BrewSLM widget (prepended to each widget's module).

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// replaceChildren() would print null as "null": drop empty slots and flatten lists first.
function fill(el, ...children) {
  el.replaceChildren(
    ...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false),
  );
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(+value.toFixed(4));
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function pretty(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

// Round trip: the time from a click to the re-render that the kernel's answer causes.
// Stored on the widget root as data-rtt-ms so a browser test (or a person) can read it.
function tracker(model, root) {
  let pending = null;
  let seq = 0;
  return {
    send(message) {
      seq += 1;
      pending = { t0: performance.now(), seq, type: message.type };
      root.dataset.pending = message.type;
      model.send({ ...message, seq });
    },
    mark() {
      root.dataset.pending = "";
      pending = null;
    },
    settle() {
      if (!pending) return;
      const last = model.get("last_action") || {};
      if (last.seq !== pending.seq) return;
      root.dataset.rttMs = (performance.now() - pending.t0).toFixed(1);
      root.dataset.kernelMs = String(last.kernel_ms);
      root.dataset.pending = "";
      root.dataset.settled = String(pending.seq);
      pending = null;
    },
  };
}

function errorLine(model) {
  const msg = model.get("error");
  return msg ? h("div", { class: "bsl-error", role: "alert" }, msg) : null;
}
