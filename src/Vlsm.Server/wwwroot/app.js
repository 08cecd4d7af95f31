// vlsm serve's page: plain JS, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const TINT = [0, 114, 178]; // the server's overlay colour (Okabe–Ito blue, as every vlsm overlay)

const state = {
  models: [],
  file: null,
  bitmap: null,        // the chosen image, decoded by the browser for display
  results: [],         // [{ prompt, probs: Uint8ClampedArray (0..255 at image size) }]
  key: null,           // result key of the shown results, to drop stale answers
};

function status(message, ok) {
  const el = $("status");
  el.textContent = message;
  el.classList.toggle("ok", !!ok);
  el.hidden = !message;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error.field}: ${body.error.message}`;
  } catch (_) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value);
}

function describeModel() {
  const m = currentModel();
  if (!m) return;
  const params = (n) => n.toLocaleString("en-US");
  $("model-facts").textContent =
    `${m.family_name}; input ${m.input_size[0]}x${m.input_size[1]}; ${params(m.total_parameters)} parameters` +
    (m.weights ? `; weights ${m.weights}` : "") + (m.needs_prompt ? "" : "; reads no text");
  $("prompt-box").hidden = !m.needs_prompt;
}

async function loadModels() {
  const response = await fetch("/v1/models");
  if (!response.ok) { status(await errorText(response)); return; }
  state.models = (await response.json()).models;
  const select = $("model");
  select.replaceChildren(...state.models.map((m) => new Option(`${m.name} (${m.family})`, m.name)));
  describeModel();
}

async function chooseFile(file) {
  if (!file) return;
  state.file = file;
  state.results = [];
  render();
  try {
    state.bitmap = await createImageBitmap(file);
    $("image-facts").textContent = `${file.name}: ${state.bitmap.width}x${state.bitmap.height}`;
    status("");
  } catch (_) {
    // The browser cannot show it; the server still judges it and names the problem.
    state.bitmap = null;
    $("image-facts").textContent = `${file.name}: the browser cannot display this file`;
  }
}

function prompts() {
  return [...document.querySelectorAll(".prompt")].map((el) => el.value.trim()).filter((p) => p.length > 0);
}

async function segment(event) {
  event.preventDefault();
  const model = currentModel();
  if (!model) { status("model: no model is loaded"); return; }
  if (!state.file) { status("image: choose an image first"); $("image").focus(); return; }
  const form = new FormData();
  form.append("model", model.name);
  form.append("image", state.file, state.file.name);
  const list = model.needs_prompt ? prompts() : [null];
  if (model.needs_prompt) {
    if (list.length === 0) { status("prompt: type what to segment, e.g. \"small pink polyp\""); $("prompt-1").focus(); return; }
    for (const p of list) form.append("prompt", p);
  }
  form.append("output", "json");
  form.append("probabilities", "true");
  form.append("threshold", $("threshold").value);
  const button = $("segment");
  button.disabled = true;
  status("segmenting…", true);
  try {
    const response = await fetch("/v1/segment", { method: "POST", body: form });
    if (!response.ok) { status(await errorText(response)); return; }
    const body = await response.json();
    if (!state.bitmap) { status("image: the server read it, but this browser cannot display it"); return; }
    state.results = await Promise.all(body.results.map(async (r) => ({ prompt: r.prompt, probs: await grayPixels(r.probabilities_png) })));
    status("");
    render();
  } catch (e) {
    status(`the request failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

// Decodes a gray PNG (base64) into one byte per pixel at the image's size.
async function grayPixels(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const gray = new Uint8ClampedArray(bitmap.width * bitmap.height);
  for (let i = 0; i < gray.length; i++) gray[i] = rgba[i * 4];
  return gray;
}

// A blue-to-yellow ramp (viridis's end points) for the heat map.
function heat(v) {
  const t = v / 255;
  return [68 + (253 - 68) * t, 1 + (231 - 1) * t, 84 + (37 - 84) * t];
}

// The server's mask is probability > threshold; probabilities arrive as round(p * 255).
function isOn(value) {
  return value > parseFloat($("threshold").value) * 255;
}

function draw(canvas, probs) {
  const { width, height } = state.bitmap;
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(state.bitmap, 0, 0);
  const image = ctx.getImageData(0, 0, width, height);
  const px = image.data;
  const alpha = parseFloat($("opacity").value);
  const showHeat = $("heatmap").checked;
  let area = 0;
  for (let i = 0; i < probs.length; i++) {
    const on = isOn(probs[i]);
    if (on) area++;
    const colour = showHeat ? heat(probs[i]) : on ? TINT : null;
    if (!colour) continue;
    const j = i * 4;
    for (let c = 0; c < 3; c++) px[j + c] = px[j + c] * (1 - alpha) + colour[c] * alpha;
  }
  ctx.putImageData(image, 0, 0);
  return area;
}

function maskBlob(probs) {
  const { width, height } = state.bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < probs.length; i++) {
    const v = isOn(probs[i]) ? 255 : 0;
    image.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
  return canvas.convertToBlob({ type: "image/png" });
}

function render() {
  const section = $("results");
  if (state.results.length === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "Choose an image and a prompt, then press Segment. Re-thresholding and opacity need no new request.";
    section.replaceChildren(p);
    return;
  }
  const total = state.bitmap.width * state.bitmap.height;
  section.replaceChildren(...state.results.map((r, index) => {
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    const area = draw(canvas, r.probs);
    const label = r.prompt === null ? "mask" : `"${r.prompt}"`;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `${label}: ${area} pixels`);
    figure.dataset.area = String(area);
    const caption = document.createElement("figcaption");
    const name = document.createElement(r.prompt === null ? "span" : "q");
    name.textContent = r.prompt === null ? "mask" : r.prompt;
    const facts = document.createElement("span");
    facts.className = "area";
    facts.textContent = `${area.toLocaleString("en-US")} px (${(100 * area / total).toFixed(1)}%)`;
    const link = document.createElement("a");
    link.href = "#";
    link.textContent = "Download mask PNG";
    link.addEventListener("click", async (e) => {
      e.preventDefault();
      const url = URL.createObjectURL(await maskBlob(r.probs));
      const a = document.createElement("a");
      a.href = url;
      a.download = `${(state.file.name || "image").replace(/\.[^.]*$/, "")}.mask${index + 1}.png`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    });
    caption.append(name, facts, link);
    figure.append(canvas, caption);
    return figure;
  }));
}

async function fillTemplate() {
  const query = new URLSearchParams();
  for (const key of ["class", "number", "size", "color", "shape", "location"]) query.set(key, $(`t-${key}`).value);
  const response = await fetch(`/v1/prompts?${query}`);
  if (!response.ok) { status(await errorText(response)); return; }
  const prompts = (await response.json()).prompts;
  const chosen = prompts[$("t-key").value];
  if (!chosen) { status(`template: ${$("t-key").value} needs a class with descriptions (polyp, skin melanoma, foot ulcer)`); return; }
  const target = $(`prompt-${$("t-target").value}`);
  target.value = chosen[0];
  $("template-preview").textContent = chosen.length > 1 ? `${chosen.length} variants; the first was used.` : "";
  target.focus();
  status("");
}

function wire() {
  $("model").addEventListener("change", () => { describeModel(); state.results = []; render(); });
  $("image").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); chooseFile(e.dataTransfer.files[0]); });
  $("controls").addEventListener("submit", segment);
  $("fill").addEventListener("click", fillTemplate);
  for (const id of ["threshold", "opacity"]) {
    $(id).addEventListener("input", () => { $(`${id}-value`).textContent = parseFloat($(id).value).toFixed(2); render(); });
  }
  $("heatmap").addEventListener("change", render);
}

wire();
loadModels().catch((e) => status(`could not list the models: ${e.message}`));
