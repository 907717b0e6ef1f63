// The page of a video model: upload a clip, show its label, probabilities and timeline.
// Everything runs on the server (POST /predict); no external resources.
"use strict";

const $ = (id) => document.getElementById(id);

function text(tag, value, className) {
  const node = document.createElement(tag);
  node.textContent = value;
  if (className) node.className = className;
  return node;
}

async function describe() {
  try {
    const health = await (await fetch("/health")).json();
    const m = health.model, v = health.video;
    $("model").textContent = `${m.architecture}: ${m.num_classes} classes (${m.classes.join(", ")}); ` +
      `${v.steps} frames of ${v.frame_size.join("x")} sampled ${v.sampling}`;
    $("limits").textContent = `Up to ${v.max_seconds} s and ` +
      `${(health.limits.max_upload_bytes / 1048576).toFixed(0)} MiB.`;
    $("window").value = v.window;
    $("stride").value = v.stride;
  } catch (err) {
    $("model").textContent = "the server does not answer /health";
  }
}

function show(answer) {
  const results = $("results");
  results.replaceChildren(text("p", `${answer.label} (${(answer.probability * 100).toFixed(1)}%) — ` +
    `${answer.video.duration} s, ${answer.video.frames} frames at ${answer.video.fps} fps`));
  results.dataset.state = "done";
  const bars = $("bars");
  bars.replaceChildren(...answer.predictions.map((p) => {
    const item = text("li", `${p.label} ${(p.probability * 100).toFixed(1)}%`);
    item.style.setProperty("--p", p.probability);
    return item;
  }));
  const body = $("timeline").querySelector("tbody");
  body.replaceChildren(...answer.timeline.map((w) => {
    const row = document.createElement("tr");
    row.append(text("td", w.start), text("td", w.end), text("td", w.label), text("td", w.probability.toFixed(3)));
    return row;
  }));
  $("timing").textContent = `answered in ${answer.elapsed_ms} ms`;
}

async function submit(event) {
  event.preventDefault();
  const file = $("video").files[0];
  if (!file) return;
  const player = $("player");
  player.src = URL.createObjectURL(file);
  player.hidden = false;
  $("results").replaceChildren(text("p", "classifying…", "muted"));
  $("results").dataset.state = "busy";
  const form = new FormData();
  form.append("video", file, file.name);
  const query = new URLSearchParams({window: $("window").value, stride: $("stride").value});
  try {
    const response = await fetch(`/predict?${query}`, {method: "POST", body: form});
    const answer = await response.json();
    if (!response.ok) {
      $("results").replaceChildren(text("p", `${response.status}: ${answer.error}`, "error"));
      $("results").dataset.state = "error";
      return;
    }
    show(answer);
  } catch (err) {
    $("results").replaceChildren(text("p", `request failed: ${err}`, "error"));
    $("results").dataset.state = "error";
  }
}

$("video-form").addEventListener("submit", submit);
describe();
