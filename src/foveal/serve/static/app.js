// foveal serve page: choose, drop or paste an image; show it and the model's top-k labels.
//
// Layout of this file: BACKENDS (where answers come from), RENDERERS (how an answer is drawn,
// one per model task), then the page wiring. #results carries data-state
// (idle | busy | done | error) so tests and scripts can wait for an answer.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { health: null, file: null, objectUrl: null, request: 0 };

// ---- BACKENDS ---------------------------------------------------------------------------
// A backend turns (file, topK) into the /predict JSON: {task, file, image, predictions, ...}.
// ROOM: a "browser" backend (the model's ONNX export run by ONNX Runtime Web) would return
// the same JSON, and a switch in the header would choose between the two.
const BACKENDS = {
  server: {
    async predict(file, topK) {
      const form = new FormData();
      form.append("image", file, file.name || "pasted.png");
      const response = await fetch(`/predict?top_k=${encodeURIComponent(topK)}`, { method: "POST", body: form });
      let body;
      try {
        body = await response.json();
      } catch (_) {
        body = { error: `the server answered ${response.status} ${response.statusText}` };
      }
      if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
      return body;
    },
  },
};
let backend = BACKENDS.server;

// ---- RENDERERS, one per task (the "task" key of the answer) ------------------------------
// ROOM: "detect" will draw answer.boxes ([{label, probability, box: [x0, y0, x1, y1]}] in the
// pixels of answer.image) and "segment" answer.masks on the #overlay canvas, then list labels.
const RENDERERS = {
  classify(answer) {
    const bars = $("bars");
    bars.replaceChildren(...answer.predictions.map(barRow));
    // Let the zero-width bars paint once so their widths animate in.
    requestAnimationFrame(() => requestAnimationFrame(() => {
      bars.querySelectorAll(".fill").forEach((fill) => { fill.style.width = fill.dataset.width; });
    }));
  },
};

function barRow(prediction) {
  const percent = prediction.probability * 100;
  const text = percent >= 99.95 || percent === 0 ? `${percent.toFixed(0)}%` : `${percent.toFixed(1)}%`;
  const li = document.createElement("li");
  li.dataset.label = prediction.label;
  li.dataset.probability = String(prediction.probability);
  const label = el("span", "label", prediction.label);
  label.title = prediction.label;
  const track = el("span", "track");
  const fill = el("span", "fill");
  fill.dataset.width = `${Math.min(100, Math.max(0, percent)).toFixed(2)}%`;
  track.append(fill);
  track.setAttribute("role", "img");
  track.setAttribute("aria-label", `${prediction.label}: ${text}`);
  li.append(label, track, el("span", "pct", text));
  return li;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- page ---------------------------------------------------------------------------------
function setStatus(kind, message) {
  const results = $("results");
  results.dataset.state = kind;
  results.replaceChildren(el("p", kind === "error" ? "" : "muted", message));
}

async function loadHealth() {
  try {
    const response = await fetch("/health");
    state.health = await response.json();
  } catch (error) {
    $("model").textContent = `cannot reach the server (${error.message})`;
    return;
  }
  const m = state.health.model;
  const model = $("model");
  model.replaceChildren(
    el("b", "", m.architecture),
    document.createTextNode(` · ${m.num_classes} classes · input ${m.input_shape.join("×")} (${m.channel_order})`),
  );
  model.dataset.architecture = m.architecture;
  $("classes").textContent = m.classes.join(", ");
  const topk = $("topk");
  topk.max = String(m.num_classes);
  topk.value = String(Math.min(state.health.limits.top_k, m.num_classes));
}

function showPreview(file) {
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(file);
  $("photo").src = state.objectUrl;
  $("preview").hidden = false;
  $("caption").textContent = `${file.name || "pasted image"} · ${formatBytes(file.size)}`;
}

function formatBytes(n) {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

async function classify(file) {
  if (!file) return;
  state.file = file;
  const limit = state.health && state.health.limits.max_upload_bytes;
  showPreview(file);
  if (limit && file.size > limit) {
    $("bars").replaceChildren();
    setStatus("error", `This file is ${formatBytes(file.size)}; the server takes at most ${formatBytes(limit)}.`);
    return;
  }
  const request = ++state.request;  // answers to older requests are dropped
  setStatus("busy", "Classifying…");
  try {
    const answer = await backend.predict(file, $("topk").value || 5);
    if (request !== state.request) return;
    const render = RENDERERS[answer.task];
    if (!render) throw new Error(`this page cannot show answers of task "${answer.task}"`);
    render(answer);
    const size = answer.image && answer.image.width ? `${answer.image.width}×${answer.image.height} ${answer.image.format}` : "";
    setStatus("done", `${answer.file}${size ? ` (${size})` : ""}`);
    $("timing").textContent = `answered in ${answer.elapsed_ms} ms on the server`;
  } catch (error) {
    if (request !== state.request) return;
    $("bars").replaceChildren();
    $("timing").textContent = "";
    setStatus("error", error.message);
  }
}

function firstImage(items) {
  for (const item of items || []) {
    const file = item instanceof File ? item : item.kind === "file" ? item.getAsFile() : null;
    if (file && (!file.type || file.type.startsWith("image/"))) return file;
  }
  return null;
}

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => classify(event.target.files[0]));
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = firstImage(event.dataTransfer.files);
    if (file) classify(file); else setStatus("error", "That was not an image file.");
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("file").click(); }
  });
  document.addEventListener("paste", (event) => {
    const file = firstImage(event.clipboardData && event.clipboardData.items);
    if (file) classify(file);
  });
  $("topk").addEventListener("change", () => { if (state.file) classify(state.file); });
  // Dropping a file anywhere else would make the browser open it and leave the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  const photo = $("photo");
  photo.addEventListener("load", () => photo.classList.toggle("tiny", photo.naturalWidth < 128));
  photo.addEventListener("error", () => { $("preview").hidden = true; });  // the browser cannot show it
}

wire();
loadHealth();
