// foveal serve page: choose, drop or paste an image; show it and the model's answer: top-k
// labels (classifiers), boxes drawn over the image (detectors, localizers), the mask painted
// over it (segmenters), each instance's mask and box (instance segmenters) or the enhanced
// image beside it (enhancers). A generative model's page
// has no upload: a form asks GET /generate for samples (count, seed, class) and shows the grid.
//
// Layout of this file: BACKENDS (where answers come from), RENDERERS (how an answer is drawn,
// one per model task), then the page wiring. #results carries data-state
// (idle | busy | done | error) so tests and scripts can wait for an answer.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { health: null, file: null, objectUrl: null, request: 0 };

// ---- BACKENDS ---------------------------------------------------------------------------
// A backend turns (file, topK) into the /predict JSON: {task, file, image, predictions, ...}.
// "server" posts the file; "browser" runs the model's ONNX export (/model.onnx) with ONNX
// Runtime Web (wasm, one thread) on pixels prepared here exactly as foveal prepares them.
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
  browser: {
    where: "browser",
    async predict(file, topK) {
      const { card, session } = await browserModel();
      const start = performance.now();
      const decoded = await decodeImage(file);
      const maxPixels = state.health && state.health.limits.max_pixels;
      if (maxPixels && decoded.width * decoded.height > maxPixels) {
        throw new Error(`${file.name || "the image"}: ${decoded.width}×${decoded.height} has more than ${maxPixels} pixels`);
      }
      let answer;
      if (card.task === "enhance") {
        const s = card.enhance.scale;
        if (maxPixels && s > 1 && decoded.width * decoded.height * s * s > maxPixels) {
          throw new Error(`${file.name || "the image"}: enhanced ×${s} it would have more than ${maxPixels} pixels`);
        }
        answer = await enhanceInBrowser(session, card, decoded);
      } else {
        const [h, w, c] = card.input_shape;
        const input = new ort.Tensor("float32", modelInput(decoded, card), [1, h, w, c]);
        const outputs = await session.run({ [session.inputNames[0]]: input });
        const finish = BROWSER_TASKS[card.task];
        if (!finish) throw new Error(`the page cannot run a "${card.task}" model in the browser`);
        answer = finish(outputs, session, card, decoded, Number(topK) || 5);
      }
      return {
        task: card.task, file: file.name || "pasted image", model: card.architecture,
        image: { width: decoded.width, height: decoded.height, format: (file.type.split("/")[1] || "").toUpperCase() },
        ...answer,
        elapsed_ms: Math.round((performance.now() - start) * 100) / 100,
        where: "browser",
      };
    },
  },
};
let backend = BACKENDS.server;

// ---- the in-browser answer of each task, as the server's render() writes it ------------------
// (foveal.export.tasks: classify.py, localization/detection/segmentation export_check.py)
const round6 = (v) => Math.round(v * 1e6) / 1e6;
const round1 = (v) => Math.round(v * 10) / 10;
const sigmoid = (v) => 1 / (1 + Math.exp(-v));

function topK(probs, names, k) {
  const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a] || a - b).slice(0, Math.max(1, Math.min(k, probs.length)));
  return order.map((i) => ({ label: names[i], probability: round6(probs[i]) }));
}

const BROWSER_TASKS = {
  classify(outputs, session, card, decoded, k) {
    return { predictions: topK(outputs[session.outputNames[0]].data, card.class_names, k) };
  },
  // The box is (cx, cy, sqrt w, sqrt h) of the image; one class: a presence score.
  localize(outputs, session, card, { width, height }, k) {
    const [cx, cy, sw, sh] = outputs.box.data;
    const probs = outputs.class.data;
    const hw = (sw * sw) / 2, hh = (sh * sh) / 2;
    const clip = (v) => Math.min(1, Math.max(0, v));
    const box = [clip(cx - hw) * width, clip(cy - hh) * height, clip(cx + hw) * width, clip(cy + hh) * height];
    const single = card.class_names.length === 1;
    const best = single ? 0 : probs.indexOf(Math.max(...probs));
    const predictions = single ? [{ label: card.class_names[0], probability: round6(probs[0]) }] : topK(probs, card.class_names, k);
    return { boxes: [{ label: card.class_names[best], score: round6(probs[best]), box: box.map(round1) }], predictions };
  },
  // Decode every anchor whose objectness passes the threshold (YOLO: sigmoid centre in its cell,
  // anchor size times exp), score = objectness x best class probability, then greedy
  // class-aware NMS, as foveal.detection.postprocess.detect_from_outputs.
  detect(outputs, session, card, { width, height }) {
    const { anchors, postprocess: p } = card.detect;
    const scales = session.outputNames.filter((n) => n.startsWith("raw_")).map((n) => outputs[n])
      .sort((a, b) => b.dims[1] * b.dims[2] - a.dims[1] * a.dims[2]);
    const perScale = anchors.length / scales.length;
    const found = [];
    scales.forEach((raw, s) => {
      const [, gh, gw, na, depth] = raw.dims;
      const t = raw.data;
      for (let cell = 0; cell < gh * gw; cell++) {
        const row = Math.floor(cell / gw), col = cell % gw;
        for (let a = 0; a < na; a++) {
          const o = (cell * na + a) * depth;
          const objectness = sigmoid(t[o + 4]);
          if (!(objectness > p.score_threshold)) continue;
          let best = 0, total = 0;
          const top = Math.max(...t.subarray(o + 5, o + depth));
          for (let j = 5; j < depth; j++) total += Math.exp(t[o + j] - top);
          for (let j = 6; j < depth; j++) if (t[o + j] > t[o + 5 + best]) best = j - 5;
          const score = objectness * (Math.exp(t[o + 5 + best] - top) / total);
          if (!(score > p.score_threshold)) continue;
          const [aw, ah] = anchors[s * perScale + a];
          const x = (sigmoid(t[o]) + col) / gw, y = (sigmoid(t[o + 1]) + row) / gh;
          const w = aw * Math.exp(t[o + 2]) / 2, h = ah * Math.exp(t[o + 3]) / 2;
          found.push({ box: [x - w, y - h, x + w, y + h], score, cls: best });
        }
      }
    });
    found.sort((a, b) => b.score - a.score);
    const kept = [];
    for (const d of found) {
      if (kept.length >= p.max_detections) break;
      if (kept.every((k) => (p.class_aware && k.cls !== d.cls) || iou(k.box, d.box) <= p.iou_threshold)) kept.push(d);
    }
    const clip = (v, limit) => Math.min(limit, Math.max(0, Math.min(1, Math.max(0, v)) * limit));
    return { boxes: kept.map((d) => ({
      label: card.class_names[d.cls], score: round6(d.score),
      box: [clip(d.box[0], width), clip(d.box[1], height), clip(d.box[2], width), clip(d.box[3], height)].map(round1),
    })) };
  },
  // Probabilities at the model's size, resized to the image's (bilinear, half-pixel centres,
  // as tf.image.resize), then the most probable class per pixel, painted in the class colours.
  segment(outputs, session, card, { width, height }) {
    const probs = outputs[session.outputNames[0]];
    const [, ih, iw, classes] = probs.dims;
    const p = probs.data;
    const { colours, transparent, opacity } = card.segment;
    const axis = (outSize, inSize) => Array.from({ length: outSize }, (_, i) => {
      const at = (i + 0.5) * (inSize / outSize) - 0.5;
      const low = Math.floor(at);
      return [Math.min(Math.max(low, 0), inSize - 1), Math.min(Math.max(Math.ceil(at), 0), inSize - 1), at - low];
    });
    const ys = axis(height, ih), xs = axis(width, iw);
    const pixels = new ImageData(width, height);
    const counts = new Array(classes).fill(0);
    for (let y = 0; y < height; y++) {
      const [y0, y1, ly] = ys[y];
      for (let x = 0; x < width; x++) {
        const [x0, x1, lx] = xs[x];
        let best = 0, bestValue = -Infinity;
        for (let k = 0; k < classes; k++) {
          const tl = p[(y0 * iw + x0) * classes + k], tr = p[(y0 * iw + x1) * classes + k];
          const bl = p[(y1 * iw + x0) * classes + k], br = p[(y1 * iw + x1) * classes + k];
          const top = tl + (tr - tl) * lx, bottom = bl + (br - bl) * lx;
          const v = top + (bottom - top) * ly;
          if (v > bestValue) { bestValue = v; best = k; }
        }
        counts[best]++;
        const o = 4 * (y * width + x);
        pixels.data.set([...colours[best], transparent.includes(best) ? 0 : Math.round(255 * opacity)], o);
      }
    }
    const order = [...counts.keys()].filter((k) => counts[k]).sort((a, b) => counts[b] - counts[a] || a - b);
    return {
      mask: { width, height, format: "rgba", pixels },
      classes: order.map((k) => ({ label: card.class_names[k], index: k, pixels: counts[k],
                                  fraction: round6(counts[k] / (width * height)), colour: colours[k] })),
    };
  },
};

// ---- enhancers (foveal.enhancement.predict.enhance): the image at its own size ------------------
// One pass when both sides fit in the tile (bottom and right mirror-padded to the input multiple),
// else overlapping tiles on a mirror-padded canvas, each keeping its centre. A colour upload to a
// 1-channel (luma-trained) model: its luma goes through the network, its chroma (full-range
// BT.601 Cb, Cr) is upscaled by the baseline interpolation, and the two are joined into RGB.
async function enhanceInBrowser(session, card, decoded) {
  const { scale } = card.enhance;
  const { width: w, height: h, rgba } = decoded;
  const n = w * h;
  const c = card.input_shape[2];
  let gray = c === 1;  // foveal.enhancement.predict.as_model_channels: R = G = B stays one channel
  for (let i = 0; gray && i < n; i++) gray = rgba[4 * i] === rgba[4 * i + 1] && rgba[4 * i] === rgba[4 * i + 2];
  let input;
  if (c === 3) input = channels(rgba, n, 3);
  else if (gray) input = Float32Array.from({ length: n }, (_, i) => rgba[4 * i]);
  else input = channels(rgba, n, 1);
  const run = async (pixels, th, tw) => {
    const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", pixels, [1, th, tw, c]) };
    return (await session.run(feeds))[session.outputNames[0]].data;
  };
  const out = await enhanceArray(run, input, h, w, c, card.enhance);
  const H = h * scale, W = w * scale;
  const rgb = c === 1 && !gray ? joinLuma(out, rgba, h, w, scale, card.enhance.baseline) : out;
  const k = rgb.length / (H * W);
  const image = new ImageData(W, H);
  for (let i = 0; i < H * W; i++) {
    for (let j = 0; j < 3; j++) image.data[4 * i + j] = toUint8(f32(rgb[i * k + (k === 3 ? j : 0)] * 255));
    image.data[4 * i + 3] = 255;
  }
  const canvas = document.createElement("canvas");
  canvas.width = W;
  canvas.height = H;
  canvas.getContext("2d").putImageData(image, 0, 0);
  const data = canvas.toDataURL("image/png").replace(/^data:image\/png;base64,/, "");
  return { scale, enhanced: { width: W, height: H, format: "png", data } };
}

// Index maps of numpy's "symmetric" padding: `before` in front (np.pad, filled chunk by chunk as
// numpy does when the pad is longer than the axis), then the end padded to `total` by
// foveal's _pad_to (repeated mirrors of the current end).
function mirrorAxis(size, before, total) {
  const map = new Array(before + size);
  for (let i = 0; i < size; i++) map[before + i] = i;
  for (let left = before; left > 0;) {
    const period = Math.floor((map.length - left) / size) * size;
    const chunk = Math.min(period, left);
    const start = left - 1 + chunk;
    for (let j = 0; j < chunk; j++) map[left - chunk + j] = map[start - j];
    left -= chunk;
  }
  while (map.length < total) {
    const len = map.length;
    const k = Math.min(total - len, len);
    for (let j = 0; j < k; j++) map.push(map[len - 1 - j]);
  }
  return map;
}

// Float32 HxWxC pixels (0..255) -> the model's output, (H*s)x(W*s)xC in [0, 1] (predict.enhance_array).
async function enhanceArray(run, pixels, h, w, c, { scale: s, multiple, tile }) {
  const crop = (rows, cols, y0, x0, th, tw) => {
    const part = new Float32Array(th * tw * c);
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const from = (rows[y0 + y] * w + cols[x0 + x]) * c;
        for (let k = 0; k < c; k++) part[(y * tw + x) * c + k] = pixels[from + k];
      }
    }
    return part;
  };
  const clip = (v) => Math.min(1, Math.max(0, v));
  tile = Math.max(multiple, Math.floor(tile / multiple) * multiple);
  const H = h * s, W = w * s;
  const out = new Float32Array(H * W * c);
  if (h <= tile && w <= tile) {
    const ph = Math.ceil(h / multiple) * multiple, pw = Math.ceil(w / multiple) * multiple;
    const pred = await run(crop(mirrorAxis(h, 0, ph), mirrorAxis(w, 0, pw), 0, 0, ph, pw), ph, pw);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W * c; x++) out[y * W * c + x] = clip(pred[y * pw * s * c + x]);
    }
    return out;
  }
  const margin = Math.floor(Math.floor(tile / 8) / multiple) * multiple;
  const inner = tile - 2 * margin;
  const ny = Math.ceil(h / inner), nx = Math.ceil(w / inner);
  const rows = mirrorAxis(h, margin, ny * inner + 2 * margin), cols = mirrorAxis(w, margin, nx * inner + 2 * margin);
  const ts = tile * s;
  for (let i = 0; i < ny; i++) {
    for (let j = 0; j < nx; j++) {
      const pred = await run(crop(rows, cols, i * inner, j * inner, tile, tile), tile, tile);
      for (let y = 0; y < inner * s; y++) {
        const oy = i * inner * s + y;
        if (oy >= H) break;
        for (let x = 0; x < inner * s; x++) {
          const ox = j * inner * s + x;
          if (ox >= W) break;
          for (let k = 0; k < c; k++) out[(oy * W + ox) * c + k] = clip(pred[((margin * s + y) * ts + margin * s + x) * c + k]);
        }
      }
    }
  }
  return out;
}

// Full-range BT.601 (JPEG, PIL's YCbCr), as foveal.enhancement.predict.rgb_to_ycbcr / ycbcr_to_rgb.
const RGB_TO_CBCR = [[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]];
const YCBCR_TO_RGB = (() => {  // the inverse of [[0.299, 0.587, 0.114], ...RGB_TO_CBCR], computed as numpy does
  const m = [[0.299, 0.587, 0.114], ...RGB_TO_CBCR];
  const det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
    + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  const cof = (r, q) => {
    const rs = [0, 1, 2].filter((v) => v !== r), qs = [0, 1, 2].filter((v) => v !== q);
    return ((r + q) % 2 ? -1 : 1) * (m[rs[0]][qs[0]] * m[rs[1]][qs[1]] - m[rs[0]][qs[1]] * m[rs[1]][qs[0]]);
  };
  return [0, 1, 2].map((i) => [0, 1, 2].map((j) => cof(j, i) / det));
})();

// An enhanced luma y ((h*s)x(w*s), [0, 1]) and the upload's RGBA bytes (h x w) -> RGB in [0, 1]:
// predict.join_luma (the chroma upscaled by the baseline, clipped, joined, clipped).
function joinLuma(y, rgba, h, w, scale, baseline = "bicubic") {
  const n = h * w;
  const chroma = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const rgb = [0, 1, 2].map((j) => f32(rgba[4 * i + j] / 255));
    for (let k = 0; k < 2; k++) {
      const m = RGB_TO_CBCR[k];
      chroma[2 * i + k] = f32(m[0] * rgb[0] + m[1] * rgb[1] + m[2] * rgb[2] + 0.5);
    }
  }
  const up = scale > 1 ? resizeUp(chroma, h, w, 2, scale, baseline) : chroma;
  const N = n * scale * scale;
  const out = new Float32Array(N * 3);
  for (let i = 0; i < N; i++) {
    const v = [y[i], up[2 * i] - 0.5, up[2 * i + 1] - 0.5];
    for (let j = 0; j < 3; j++) {
      const m = YCBCR_TO_RGB[j];
      out[3 * i + j] = Math.min(1, Math.max(0, m[0] * v[0] + m[1] * v[1] + m[2] * v[2]));
    }
  }
  return out;
}

// tf.image.resize(method=bicubic or bilinear) upscaling by `s`, clipped to [0, 1] (degrade.upscale):
// half-pixel centres; bicubic is TensorFlow's ResizeBicubic with Keys' kernel (a = -0.5) read from
// its 1024-step table, taps outside the image dropped and the rest renormalised.
const KEYS_TABLE = (() => {
  const a = -0.5, size = 1024, table = new Float32Array((size + 1) * 2);
  for (let i = 0; i <= size; i++) {
    let x = i / size;
    table[2 * i] = ((a + 2) * x - (a + 3)) * x * x + 1;
    x += 1;
    table[2 * i + 1] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  }
  return table;
})();

function resizeTaps(inSize, outSize, method) {
  const scale = f32(inSize / outSize);
  const bound = (v) => Math.min(inSize - 1, Math.max(0, v));
  return Array.from({ length: outSize }, (_, o) => {
    const at = f32(f32(f32(o + 0.5) * scale) - 0.5);
    const low = Math.floor(at);
    if (method === "bilinear") {
      const lerp = f32(at - low);
      return { index: [bound(low), bound(Math.ceil(at))], weight: [1 - lerp, lerp] };
    }
    const offset = Math.round(f32(at - low) * 1024);  // lrintf; delta * 1024 is never a half here
    const t = KEYS_TABLE;
    const raw = [t[offset * 2 + 1], t[offset * 2], t[(1024 - offset) * 2], t[(1024 - offset) * 2 + 1]];
    const index = [low - 1, low, low + 1, low + 2];
    const weight = raw.map((v, k) => (bound(index[k]) === index[k] ? v : 0));
    const sum = weight.reduce((p, q) => p + q, 0);
    return { index: index.map(bound), weight: weight.map((v) => v / sum) };
  });
}

function resizeUp(pixels, h, w, c, s, method) {
  if (!["bicubic", "bilinear"].includes(method)) throw new Error(`the page cannot upscale by "${method}"`);
  const cols = resizeTaps(w, w * s, method), rows = resizeTaps(h, h * s, method);
  const out = separable(pixels, h, w, c, cols, rows, (sum, weight, v) => sum + weight * v, Float64Array);
  return out.map((v) => Math.min(1, Math.max(0, v)));
}

// Two 1-D passes, along the rows then the columns: `cols` and `rows` hold each output index's taps
// {index, weight}; `add` accumulates one tap in the arithmetic of the TensorFlow kernel being
// matched (float64 then rounded, or float32 at every step), `Wide` holds the first pass.
function separable(pixels, h, w, c, cols, rows, add, Wide) {
  const W = cols.length, H = rows.length;
  const wide = new Wide(h * W * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < W; x++) {
      const { index, weight } = cols[x];
      for (let k = 0; k < c; k++) {
        let sum = 0;
        for (let j = 0; j < index.length; j++) sum = add(sum, weight[j], pixels[(y * w + index[j]) * c + k]);
        wide[(y * W + x) * c + k] = sum;
      }
    }
  }
  const out = new Float32Array(H * W * c);
  for (let y = 0; y < H; y++) {
    const { index, weight } = rows[y];
    for (let x = 0; x < W; x++) {
      for (let k = 0; k < c; k++) {
        let sum = 0;
        for (let j = 0; j < index.length; j++) sum = add(sum, weight[j], wide[(index[j] * W + x) * c + k]);
        out[(y * W + x) * c + k] = sum;
      }
    }
  }
  return out;
}

function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const area = (r) => Math.max(0, r[2] - r[0]) * Math.max(0, r[3] - r[1]);
  const inter = w * h;
  return inter / Math.max(area(a) + area(b) - inter, 1e-9);
}

// ---- the in-browser model ------------------------------------------------------------------
const ORT_DIR = "/static/ort/";
let browserLoading = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(script);
  });
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: the server answered ${response.status}`);
  return response;
}

// ONNX Runtime Web, the card and the session: loaded on first use (~11 MB), then kept.
function browserModel() {
  if (!browserLoading) {
    browserLoading = (async () => {
      if (!window.ort) await loadScript(`${ORT_DIR}ort.wasm.min.js`);
      ort.env.wasm.wasmPaths = ORT_DIR;
      ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation; one is enough here
      ort.env.wasm.proxy = false;
      const [card, bytes] = await Promise.all([
        fetchOk("/model.json").then((r) => r.json()),
        fetchOk("/model.onnx").then((r) => r.arrayBuffer()),
      ]);
      const session = await ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
      return { card, session };
    })();
    browserLoading.catch(() => { browserLoading = null; });  // try again on the next image
  }
  return browserLoading;
}

// ---- pixels, as foveal's pipeline makes them (foveal.data.decode + pipeline.resize_image) ----
// The browser decodes (PNG, BMP and GIF give the same pixels as TensorFlow; JPEG decoders may
// differ by a level or two); everything after is computed here in float32 like TensorFlow.
const LUMA = [0.2989, 0.587, 0.114];  // tf.image.rgb_to_grayscale
const f32 = Math.fround;

async function decodeImage(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch (_) {
    throw new Error(`${file.name || "the image"}: not an image this browser can decode`);
  }
  const { width, height } = bitmap;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, width, height).data;
  return { width, height, rgba, bitmap };
}

// tf.round: halves go to the even neighbour.
function roundHalfEven(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function toUint8(v) { return Math.min(255, Math.max(0, roundHalfEven(v))); }

// RGBA bytes -> float32 HxWxC with C = 1 (luma, rounded to uint8 as foveal does) or 3.
function channels(rgba, n, c) {
  const out = new Float32Array(n * c);
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    if (c === 1) out[i] = toUint8(f32(f32(f32(LUMA[0] * r) + f32(LUMA[1] * g)) + f32(LUMA[2] * b)));
    else out.set([r, g, b], 3 * i);
  }
  return out;
}

// tf.image.resize(bilinear, antialias=True) is ScaleAndTranslate with a triangle kernel widened
// by the downscale factor: for each output index, its input span and normalised weights.
function spans(inSize, outSize) {
  const scale = f32(outSize / inSize);
  const inv = f32(1 / scale);
  const kernelScale = Math.max(inv, 1);
  const result = [];
  for (let x = 0; x < outSize; x++) {
    const sample = f32((x + 0.5) * inv);
    const first = Math.min(Math.max(Math.ceil(sample - kernelScale - 0.5), 0), inSize - 1);
    const last = Math.min(Math.max(Math.floor(sample + kernelScale - 0.5), 0), inSize - 1);
    const weights = [];
    for (let s = first; s <= last; s++) weights.push(Math.max(0, 1 - Math.abs((s + 0.5 - sample) / kernelScale)));
    const total = weights.reduce((a, b) => a + b, 0);
    result.push({ first, weights: total > 0 ? weights.map((v) => f32(v / total)) : weights });
  }
  return result;
}

// Float32 HxWxC -> float32 outH x outW x C, one axis at a time.
function resizeAntialias(pixels, h, w, c, outH, outW) {
  const taps = (inSize, outSize) => spans(inSize, outSize).map(({ first, weights }) => (
    { index: weights.map((_, j) => first + j), weight: weights }));
  return separable(pixels, h, w, c, taps(w, outW), taps(h, outH), (sum, weight, v) => f32(sum + f32(weight * v)),
                   Float32Array);
}

// tf.image.resize_with_pad's geometry: the scaled size (floored) and the top-left padding.
function letterbox(h, w, outH, outW) {
  const ratio = Math.max(f32(w / outW), f32(h / outH));
  const rh = f32(h / ratio), rw = f32(w / ratio);
  return { h: Math.floor(rh), w: Math.floor(rw),
           top: Math.max(0, Math.floor(f32((outH - rh) / 2))), left: Math.max(0, Math.floor(f32((outW - rw) / 2))) };
}

// The model's float32 NHWC input (0..255), as foveal's resize_image makes it. resize "canvas"
// lets the browser scale instead (drawImage, high-quality smoothing): close, not identical.
function modelInput(decoded, card, resize = "exact") {
  const [outH, outW, c] = card.input_shape;
  const { width: w, height: h } = decoded;
  if (w === outW && h === outH) return channels(decoded.rgba, w * h, c);
  const box = card.keep_aspect ? letterbox(h, w, outH, outW) : { h: outH, w: outW, top: 0, left: 0 };
  let scaled;
  if (resize === "canvas") {
    const canvas = document.createElement("canvas");
    canvas.width = box.w;
    canvas.height = box.h;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.imageSmoothingQuality = "high";
    context.drawImage(decoded.bitmap, 0, 0, box.w, box.h);
    scaled = channels(context.getImageData(0, 0, box.w, box.h).data, box.w * box.h, c);
  } else {
    scaled = resizeAntialias(channels(decoded.rgba, w * h, c), h, w, c, box.h, box.w).map(toUint8);
  }
  if (box.h === outH && box.w === outW) return scaled;
  const out = new Float32Array(outH * outW * c);  // zero padding, as resize_with_pad
  for (let y = 0; y < box.h; y++) out.set(scaled.subarray(y * box.w * c, (y + 1) * box.w * c), ((y + box.top) * outW + box.left) * c);
  return out;
}

// For tests and the curious: the exact pixels the model gets, by either resize.
window.foveal = {
  async pixels(file, resize = "exact") {
    const { card } = await browserModel();
    return Array.from(modelInput(await decodeImage(file), card, resize));
  },
  // An enhanced luma joined with an RGB image's upscaled chroma (HxWx3 bytes, row-major), as
  // predict.join_luma, and numpy-style mirror padding: pure functions, checked against Python.
  joinLuma(y, rgb, h, w, scale, baseline) {
    const rgba = new Uint8Array(h * w * 4);
    for (let i = 0; i < h * w; i++) rgba.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255], 4 * i);
    return Array.from(joinLuma(Float32Array.from(y), rgba, h, w, scale, baseline));
  },
  mirrorAxis,
};

// ---- RENDERERS, one per task (the "task" key of the answer) ------------------------------
// Boxes ([{label, score, box: [x0, y0, x1, y1]}]) and masks (a palette PNG, background
// transparent) come in the pixels of answer.image and are drawn on the #overlay canvas, which
// has that size and is stretched over the photo by CSS, so they line up at any display size.
const RENDERERS = {
  classify(answer) {
    showBars(answer.predictions);
  },
  detect(answer) {
    drawBoxes(answer);
    showBars(answer.boxes.map((b) => ({ label: b.label, probability: b.score, box: b.box })));
  },
  localize(answer) {
    drawBoxes(answer);
    showBars(answer.predictions);
  },
  instance(answer) {
    const canvas = overlayFor(answer);
    paintInstances(canvas, answer.instances);
    drawBoxes(answer, canvas);
    showBars(answer.instances.map((d) => ({ label: d.label, probability: d.score, box: d.box })));
  },
  async segment(answer) {
    const canvas = overlayFor(answer);
    if (answer.mask.pixels) {  // computed in the browser: already RGBA at the image's size
      canvas.getContext("2d").putImageData(answer.mask.pixels, 0, 0);
    } else {
      const mask = new Image();
      mask.src = `data:image/png;base64,${answer.mask.data}`;
      await mask.decode();
      canvas.getContext("2d").drawImage(mask, 0, 0, canvas.width, canvas.height);
    }
    showBars(answer.classes.map((c) => ({ label: c.label, probability: c.fraction, colour: c.colour })));
  },
  enhance(answer) {
    const e = answer.enhanced;
    const stem = (answer.file || "image").replace(/\.[^.]*$/, "");
    showOutput(e.data, `${stem}_enhanced.png`,
      `${e.width}×${e.height}${answer.scale > 1 ? ` (×${answer.scale})` : ""}`, e.width >= 256);
  },
  generate(answer) {
    const g = answer.grid;
    const rows = answer.class === null && answer.samples.length && answer.samples[0].class !== null ? ", one row per class" : "";
    showOutput(g.data, `samples_seed${answer.seed}.png`, `grid ${g.width}×${g.height}${rows}`, false);
  },
};

// An image answer (base64 PNG) in #output, with its caption and a download link.
function showOutput(data, name, caption, smooth) {
  const url = `data:image/png;base64,${data}`;
  const image = $("output-image");
  image.src = url;
  image.classList.toggle("smooth", smooth);
  $("output-caption").textContent = caption;
  $("output-link").href = url;
  $("output-link").download = name;
  $("output").hidden = false;
}

function clearOutput() {
  $("output").hidden = true;
  $("output-image").removeAttribute("src");
}

function showBars(rows) {
  const bars = $("bars");
  bars.replaceChildren(...rows.map(barRow));
  // Let the zero-width bars paint once so their widths animate in.
  requestAnimationFrame(() => requestAnimationFrame(() => {
    bars.querySelectorAll(".fill").forEach((fill) => { fill.style.width = fill.dataset.width; });
  }));
}

// The #overlay canvas at the answer's image size, cleared and shown.
function overlayFor(answer) {
  const canvas = $("overlay");
  canvas.width = answer.image.width;
  canvas.height = answer.image.height;
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.hidden = false;
  return canvas;
}

function clearOverlay() {
  const canvas = $("overlay");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.hidden = true;
}

// One colour per class: hues spread around the wheel by the golden angle.
function classColour(label) {
  const names = (state.health && state.health.model.classes) || [];
  const index = Math.max(0, names.indexOf(label));
  return `hsl(${(index * 137.508 + 20) % 360}, 90%, 50%)`;
}

// COCO's compressed RLE ({size: [h, w], counts: "..."}) -> run lengths, as pycocotools'
// rleFrString reads them: 5 bits per character (offset 48), 0x20 "more follows", 0x10 the sign
// of the last chunk; from the third count on, each is a difference to the count two before.
function rleCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0, k = 0, more = 1;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++;
      k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// The pixels (row-major indices y * w + x) a compressed RLE covers; runs alternate 0 and 1,
// starting with 0, down the columns (column-major).
function rleIndices(rle) {
  const [h, w] = rle.size;
  const out = [];
  let i = 0, on = false;
  for (const run of rleCounts(rle.counts)) {
    if (on) for (let j = i; j < i + run; j++) out.push((j % h) * w + Math.floor(j / h));
    i += run;
    on = !on;
  }
  return out;
}

// HSL (hue in degrees, saturation and lightness 0..1) -> [r, g, b] 0..255 (CSS's formula).
function hslRgb(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const f = (n) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

// Each instance's mask tinted in a colour of its own (translucent), on the #overlay canvas.
function paintInstances(canvas, instances) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  instances.forEach((d, k) => {
    const [r, g, b] = hslRgb((k * 137.508 + 20) % 360, 0.9, 0.5);
    for (const index of rleIndices(d.mask)) {
      image.data.set([r, g, b, 120], index * 4);
    }
  });
  context.putImageData(image, 0, 0);
}

function drawBoxes(answer, canvas = overlayFor(answer)) {
  const context = canvas.getContext("2d");
  const line = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 150));
  context.lineWidth = line;
  context.font = `${Math.max(10, line * 6)}px system-ui, sans-serif`;
  context.textBaseline = "top";
  for (const { label, score, box } of answer.boxes) {
    const [x0, y0, x1, y1] = box;
    const colour = classColour(label);
    context.strokeStyle = colour;
    context.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const text = `${label} ${(score * 100).toFixed(0)}%`;
    const height = Math.max(10, line * 6) + 4;
    const width = context.measureText(text).width + 6;
    const top = y0 >= height ? y0 - height : y0;
    context.fillStyle = colour;
    context.fillRect(x0, top, width, height);
    context.fillStyle = "#fff";
    context.fillText(text, x0 + 3, top + 2);
  }
}

function barRow(prediction) {
  const percent = prediction.probability * 100;
  const text = percent >= 99.95 || percent === 0 ? `${percent.toFixed(0)}%` : `${percent.toFixed(1)}%`;
  const li = document.createElement("li");
  li.dataset.label = prediction.label;
  li.dataset.probability = String(prediction.probability);
  if (prediction.box) li.dataset.box = prediction.box.join(",");
  const label = el("span", "label", prediction.label);
  label.title = prediction.label;
  const track = el("span", "track");
  const fill = el("span", "fill");
  if (prediction.colour) fill.style.background = `rgb(${prediction.colour.join(",")})`;
  else if (prediction.box) fill.style.background = classColour(prediction.label);
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
  const generate = state.health.generate;
  const enhance = state.health.enhance;
  let facts = ` · ${m.num_classes} classes · input ${m.input_shape.join("×")} (${m.channel_order})`;
  if (generate) facts = `${generate.conditional ? ` · ${m.num_classes} classes` : ""} · images ${m.input_shape.join("×")} · latent size ${generate.latent_dim}`;
  if (enhance) facts = ` · ×${enhance.scale} · ${m.channel_order} images of any size`;
  model.replaceChildren(
    el("b", "", m.architecture),
    document.createTextNode(`${m.task === "classify" ? "" : ` · ${TASK_NAMES[m.task] || m.task}`}${facts}`),
  );
  model.dataset.architecture = m.architecture;
  model.dataset.task = m.task;
  $("answer-title").textContent = TASK_TITLES[m.task] || "Predictions";
  $("topk").parentElement.hidden = ["detect", "segment", "enhance", "generate"].includes(m.task);
  $("classes-box").hidden = m.task === "enhance" || (generate && !generate.conditional);
  if (generate) setUpGenerate(generate, m.classes);
  else if (m.task === "enhance") setStatus("idle", "Choose an image to enhance it.");
  // Letterboxing detectors run on the server only (the page cannot letterbox as training did).
  $("browser-note").hidden = state.health.browser_runtime || !state.health.browser_model_note;
  $("browser-note").textContent = state.health.browser_model_note || "";
  $("classes").textContent = m.classes.join(", ");
  const topk = $("topk");
  topk.max = String(m.num_classes);
  topk.value = String(Math.min(state.health.limits.top_k, m.num_classes));
  $("where").hidden = !state.health.browser_runtime;
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

const TASK_NAMES = { localize: "localizer", detect: "detector", segment: "segmenter", instance: "instance segmenter",
                     enhance: "enhancer", generate: "generator" };
const TASK_TITLES = { localize: "Object", detect: "Detections", segment: "Classes in the image", instance: "Instances",
                      enhance: "Enhanced image", generate: "Samples" };

// A generative model: the form replaces the upload panel; its class list is the model's.
function setUpGenerate(generate, classes) {
  $("upload-panel").hidden = true;
  $("generate-panel").hidden = false;
  $("gen-count").max = String(generate.max_samples);
  if (generate.conditional) {
    $("gen-class").append(...classes.map((name) => { const o = el("option", "", name); o.value = name; return o; }));
    $("gen-class-label").hidden = false;
  }
  setStatus("idle", "Choose how many images and a seed, then Generate.");
}

async function generateSamples() {
  const query = new URLSearchParams({ count: $("gen-count").value || "16", seed: $("gen-seed").value || "0" });
  if ($("gen-class").value) query.set("class", $("gen-class").value);
  const request = ++state.request;
  setStatus("busy", "Generating…");
  try {
    const response = await fetch(`/generate?${query}`);
    let body;
    try {
      body = await response.json();
    } catch (_) {
      body = { error: `the server answered ${response.status} ${response.statusText}` };
    }
    if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
    if (request !== state.request) return;
    RENDERERS.generate(body);
    window.foveal.answer = body;
    setStatus("done", `${body.count} image(s)${body.class !== null ? ` of class ${body.class}` : ""}, seed ${body.seed}`);
    $("timing").textContent = `answered in ${body.elapsed_ms} ms on the server`;
  } catch (error) {
    if (request !== state.request) return;
    clearOutput();
    $("timing").textContent = "";
    setStatus("error", error.message);
  }
}

async function classify(file) {
  if (!file || (state.health && state.health.generate)) return;  // a generator takes no uploads
  state.file = file;
  clearOverlay();
  clearOutput();
  const limit = state.health && state.health.limits.max_upload_bytes;
  showPreview(file);
  if (limit && file.size > limit && backend === BACKENDS.server) {
    $("bars").replaceChildren();
    setStatus("error", `This file is ${formatBytes(file.size)}; the server takes at most ${formatBytes(limit)}.`);
    return;
  }
  const request = ++state.request;  // answers to older requests are dropped
  const working = state.health && state.health.model.task === "enhance" ? "Enhancing…" : "Classifying…";
  setStatus("busy", backend === BACKENDS.browser && !browserLoading ? "Loading the model into the browser…" : working);
  try {
    const answer = await backend.predict(file, $("topk").value || 5);
    if (request !== state.request) return;
    const render = RENDERERS[answer.task];
    if (!render) throw new Error(`this page cannot show answers of task "${answer.task}"`);
    await render(answer);
    window.foveal.answer = answer;  // for tests and the curious
    const size = answer.image && answer.image.width ? `${answer.image.width}×${answer.image.height} ${answer.image.format}` : "";
    const none = answer.boxes && !answer.boxes.length ? " · no objects above the score threshold" : "";
    setStatus("done", `${answer.file}${size ? ` (${size})` : ""}${none}`);
    $("timing").textContent = answer.where === "browser"
      ? `ran in your browser in ${answer.elapsed_ms} ms`
      : `answered in ${answer.elapsed_ms} ms on the server`;
  } catch (error) {
    if (request !== state.request) return;
    $("bars").replaceChildren();
    clearOverlay();
    clearOutput();
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
  $("generate-form").addEventListener("submit", (event) => { event.preventDefault(); generateSamples(); });
  $("gen-new-seed").addEventListener("click", () => {
    $("gen-seed").value = String(Math.floor(Math.random() * 1e9));
    generateSamples();
  });
  document.querySelectorAll('#where input[name="where"]').forEach((radio) => radio.addEventListener("change", () => {
    backend = BACKENDS[radio.value] || BACKENDS.server;
    $("where").dataset.mode = radio.value;
    if (state.file) classify(state.file);
  }));
  // Dropping a file anywhere else would make the browser open it and leave the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  const photo = $("photo");
  photo.addEventListener("load", () => photo.classList.toggle("tiny", photo.naturalWidth < 128));
  photo.addEventListener("error", () => { $("preview").hidden = true; });  // the browser cannot show it
}

wire();
loadHealth();
