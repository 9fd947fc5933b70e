// medglip web page: posts the form to /v1/ground or /v1/ground-volume (whichever the file is: detect.js, and
// the server's X-Medglip-Endpoint when the first bytes did not tell), /v1/vqa and /v1/report, and shows the
// answers. Plain DOM, no build step, nothing from the internet. Text is set with textContent; the one HTML
// inserted is the report's `html`, which the server builds from the report's data with every text escaped.
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setBusy(text) {
  $("status").textContent = text || "";
  for (const id of ["ground-btn", "ask-btn", "report-btn"]) $(id).disabled = Boolean(text);
}

function fmt(v, digits) {
  return typeof v === "number" ? v.toFixed(digits) : String(v);
}

// POST a FormData (with the API key, when one is typed, as a bearer token); resolves to the JSON body,
// or throws an Error with the server's message. The key is never part of the form nor stored.
async function post(path, form) {
  let response;
  const key = $("api-key").value.trim();
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  try {
    response = await fetch(path, { method: "POST", body: form, headers });
  } catch (err) {
    throw new Error(`cannot reach the server (${err.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail !== undefined ? body.detail : response.statusText;
    const err = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    err.status = response.status;
    err.endpoint = response.headers.get("X-Medglip-Endpoint");
    throw err;
  }
  return body;
}

// The common fields; `phrasesField` names the field the phrases box goes to (or null).
function baseForm(phrasesField) {
  const form = new FormData();
  const file = $("file").files[0];
  if (file) form.append("file", file, file.name);
  if (phrasesField) {
    const phrases = $("phrases").value;
    if (phrasesField === "phrases" || phrases.trim()) form.append(phrasesField, phrases);
  }
  if ($("modality").value) form.append("modality", $("modality").value);
  return form;
}

function setImage(id, base64) {
  const img = $(id);
  if (base64) {
    img.src = "data:image/png;base64," + base64;
    img.hidden = false;
  } else {
    img.removeAttribute("src");
    img.hidden = true;
  }
}

function addRow(tbody, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
}

// The rows of a 2D answer: id (the server's F1, ... when it sends findings), phrase, score, box, and the size
// and location in words when the server measured them.
function showGrounding(result) {
  const tbody = $("results").querySelector("tbody");
  tbody.replaceChildren();
  $("box-header").textContent = "Box (x0, y0, x1, y1)";
  $("where-header").textContent = "Size, location";
  const found = medglipFindings.ofImage(result);
  for (const f of found) {
    const where = [f.size ? `${f.size} (${f.sizeSource})` : "", f.location || f.side || ""].filter(Boolean).join(" · ");
    addRow(tbody, [f.id, f.phrase, fmt(f.score, 3), f.box ? f.box.map((v) => fmt(v, 1)).join(", ") : "", where]);
  }
  setImage("overlay-img", result.overlay_png);
  if (window.medglipViewer) window.medglipViewer.hide();
  return found.length;
}

function showVolume(result) {
  const tbody = $("results").querySelector("tbody");
  tbody.replaceChildren();
  $("box-header").textContent = "Slices, size, side";
  $("where-header").textContent = "Location";
  const found = medglipFindings.ofVolume(result);
  for (const f of found) addRow(tbody, [f.id, f.phrase, fmt(f.score, 3), medglipFindings.details(f), f.location]);
  setImage("overlay-img", null);
  return found.length;
}

// The grounded volume in the viewer (when the answer carries it), and the ground truth beside it when a label
// map is chosen; a viewer failure is shown, the table stays.
async function showInViewer(result) {
  if (!window.medglipViewer) return;
  try {
    if ($("truth-file").files[0]) medglipCompare.prepare();  // side by side from the start: one layout
    await window.medglipViewer.show(result, { ctWindows: model.ct_windows || {}, defaultCtWindow: model.default_ct_window });
    await showTruth();
  } catch (err) {
    showError(`the viewer could not show the volume: ${err.message}`);
  }
}

async function showTruth() {
  const truth = $("truth-file").files[0];
  const files = (lastVolume && lastVolume.files) || {};
  if (!truth || !files["volume.nii.gz"]) {
    medglipCompare.hide();
    return;
  }
  await medglipCompare.show(truth, bytesOf(files["volume.nii.gz"].base64).buffer);
}

function bytesOf(base64) {
  const bin = atob(base64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out;
}

// Downloads: every file of the answer (label map, labels.json, DICOM-SEG, SR: what the CLI's --out writes)
// and the answer itself as JSON (without the files' bytes), plus `extra` ({name: [bytes or text, type]}).
function listDownloads(answer, stem, extra = {}) {
  for (const u of downloadUrls) URL.revokeObjectURL(u);
  downloadUrls = [];
  const box = $("downloads");
  box.replaceChildren();
  const add = (name, data, type) => {
    const a = document.createElement("a");
    const url = URL.createObjectURL(new Blob([data], { type }));
    downloadUrls.push(url);
    a.href = url;
    a.download = name;
    const size = typeof data === "string" ? new TextEncoder().encode(data).length : data.length;
    a.textContent = `${name} (${Math.max(1, Math.round(size / 1024))} kB)`;
    box.appendChild(a);
  };
  for (const [name, f] of Object.entries(answer.files || {})) {
    if (name !== "volume.nii.gz") add(name, bytesOf(f.base64), f.media_type);
  }
  const plain = {};
  for (const [k, v] of Object.entries(answer)) {
    if (k === "files") plain.files = Object.keys(v).filter((n) => n !== "volume.nii.gz");
    else if (!k.endsWith("_png") && k !== "html") plain[k] = v;
  }
  add(`${stem}.json`, JSON.stringify(plain, null, 1) + "\n", "application/json");
  for (const [name, [data, type]] of Object.entries(extra)) add(name, data, type);
}

// The endpoint of the chosen file: volumes → /v1/ground-volume, pictures and unknown files → /v1/ground
function endpointOf(kind) {
  return kind === "volume" ? "/v1/ground-volume" : "/v1/ground";
}

function groundForm(endpoint) {
  const form = baseForm("phrases");
  const thr = $("score-threshold").value;
  if (thr !== "") form.append("score_threshold", thr);
  const masks = $("masks").checked;
  if (endpoint === "/v1/ground") {
    form.append("masks", masks ? "true" : "false");
    form.append("overlay", "true");
    // no top_k: the page shows the boxes the grounder keeps, as the CLI, the report and VQA do
    if (masks) form.append("outputs", "auto");  // masks.png + labels.json (+ seg.dcm for DICOM)
  } else {
    // the volume as NIfTI for the viewer; with masks also the label map, DICOM-SEG and SR (DICOM input)
    form.append("outputs", masks ? "auto,volume" : "volume");
  }
  return form;
}

async function ground() {
  showError("");
  setBusy("grounding…");
  try {
    let endpoint = endpointOf(fileKind.kind);
    let result;
    try {
      result = await post(endpoint, groundForm(endpoint));
    } catch (err) {
      // the server read the file and names the endpoint that takes it: send it there once
      if (err.status !== 422 || !err.endpoint || err.endpoint === endpoint) throw err;
      endpoint = err.endpoint;
      result = await post(endpoint, groundForm(endpoint));
      fileKind = { kind: endpoint === "/v1/ground-volume" ? "volume" : "image", format: fileKind.format };
      showFileKind();
    }
    const volume = endpoint === "/v1/ground-volume";
    lastVolume = volume ? result : null;
    const n = volume ? showVolume(result) : showGrounding(result);
    const noun = volume ? (n === 1 ? "finding" : "findings") : (n === 1 ? "box" : "boxes");
    $("status").textContent = `${n} ${noun} (${result.modality}, ${result.modality_source})`;
    listDownloads(result, "result");
    if (volume) await showInViewer(result);
    else medglipCompare.hide();
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  } finally {
    for (const id of ["ground-btn", "ask-btn", "report-btn"]) $(id).disabled = false;
  }
}

async function ask() {
  showError("");
  // the phrases of the last grounding too: a server with the findings model then cites that call's ids (F1, ...)
  const form = baseForm($("phrases").value.trim() ? "phrases" : null);
  form.append("question", $("question").value);
  form.append("masks", $("masks").checked ? "true" : "false");
  setBusy("answering…");
  try {
    const result = await post("/v1/vqa", form);
    $("answer").textContent = result.answer.text;
    const list = $("evidence");
    list.replaceChildren();
    const byNumber = new Map((result.context.findings || []).map((f) => [f.number, f]));
    for (const number of result.answer.evidence || []) {
      const f = byNumber.get(number);
      const li = document.createElement("li");
      const name = f && f.id ? f.id : String(number);
      li.textContent = f ? `${name}. ${f.phrase} (score ${fmt(f.score, 2)}): ${f.location}` : `finding ${number}`;
      list.appendChild(li);
    }
    setImage("prompt-img", result.visual_prompt_png);
    $("status").textContent = `answered via ${result.answer.via}`;
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  } finally {
    for (const id of ["ground-btn", "ask-btn", "report-btn"]) $(id).disabled = false;
  }
}

async function report() {
  showError("");
  const form = baseForm("findings");
  form.append("masks", $("masks").checked ? "true" : "false");
  setBusy("writing the report…");
  try {
    const result = await post("/v1/report", form);
    showReport(result);
    setImage("report-img", result.overlay_png);
    $("status").textContent = "report ready";
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  } finally {
    for (const id of ["ground-btn", "ask-btn", "report-btn"]) $(id).disabled = false;
  }
}

// The report: the server's escaped HTML (built from the report's data, never from its markdown); the
// markdown as text for a server without it. Downloads: report.md, report.html, report.json, the overlay.
function showReport(result) {
  const box = $("report");
  if (typeof result.html === "string") {
    box.innerHTML = result.html;  // escaped by the server (medglip.report.html): no user text is markup
  } else {
    const pre = document.createElement("pre");
    pre.textContent = result.markdown;
    box.replaceChildren(pre);
  }
  const extra = { "report.md": [result.markdown, "text/markdown"] };
  if (typeof result.html === "string") {
    const page = "<!doctype html>\n<meta charset=\"utf-8\">\n<title>Grounding report</title>\n" + result.html + "\n";
    extra["report.html"] = [page, "text/html"];
  }
  if (result.overlay_png) extra["report_overlay.png"] = [bytesOf(result.overlay_png), "image/png"];
  listDownloads(result, "report", extra);
}

// Phrases the loaded model was trained on, for the chosen modality (auto: every modality), as buttons that add
// the phrase to the box; the placeholder names a few of them.
function showSuggestions() {
  const box = $("phrase-suggestions");
  box.replaceChildren();
  const byModality = model.phrases_by_modality || {};
  const chosen = $("modality").value;
  let groups = Object.entries(byModality);
  if (chosen) groups = groups.filter(([m]) => m === chosen);
  if (!Object.keys(byModality).length && (model.trained_phrases || []).length) groups = [["", model.trained_phrases]];
  const shown = [];
  for (const [m, phrases] of groups) {
    const group = document.createElement("div");
    group.className = "suggestion-group";
    group.dataset.modality = m;
    if (m) {
      const name = document.createElement("span");
      name.className = "modality";
      name.textContent = m;
      group.appendChild(name);
    }
    for (const phrase of phrases) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "suggestion";
      b.textContent = phrase;
      b.addEventListener("click", () => addPhrase(phrase));
      group.appendChild(b);
      shown.push(phrase);
    }
    box.appendChild(group);
  }
  if (!shown.length && Object.keys(byModality).length) {
    const none = document.createElement("small");
    none.textContent = `the model was not trained on ${chosen} images`;
    box.appendChild(none);
  }
  $("phrases").placeholder = shown.length ? `e.g. ${shown.slice(0, 2).join(", ")}` : "phrases, comma separated";
}

function addPhrase(phrase) {
  const have = $("phrases").value.split(",").map((p) => p.trim()).filter(Boolean);
  if (!have.includes(phrase)) have.push(phrase);
  $("phrases").value = have.join(", ");
}

async function loadModelInfo() {
  try {
    const health = await (await fetch("/healthz")).json();
    const m = health.model;
    $("model-info").textContent = `model ${m.preset}, ${m.image_size} px, ${m.modalities.join(" ")}`;
    const select = $("modality");
    for (const option of Array.from(select.options)) {
      if (option.value && !m.modalities.includes(option.value)) option.remove();
    }
  } catch (err) {
    // the page still works without the model summary
  }
  await loadKnownPhrases();
}

// GET /v1/model (with the API key when one is typed): what the model was trained on
async function loadKnownPhrases() {
  const key = $("api-key").value.trim();
  try {
    const response = await fetch("/v1/model", { headers: key ? { Authorization: `Bearer ${key}` } : {} });
    if (response.ok) model = await response.json();
  } catch (err) {
    // no suggestions
  }
  if (model.masks === null) {  // this server gives no masks: asking for them would be refused
    $("masks").checked = false;
    $("masks").disabled = true;
  }
  showSuggestions();
  document.body.dataset.model = "ready";
}

function showFileKind() {
  const k = fileKind;
  const shape = k.shape ? ` ${k.shape.join(" × ")}` : "";
  const text = k.kind === "volume" ? `3D volume${shape} (${k.format}): grounded slice by slice`
    : k.kind === "image" ? `2D image${shape}${k.format ? ` (${k.format})` : ""}`
      : "the server will tell whether it is a volume";
  $("file-kind").textContent = text;
  $("file-kind").dataset.kind = k.kind;
}

async function onFile() {
  fileKind = await medglipDetect.kindOf($("file").files[0]);
  showFileKind();
}

let model = {};
let fileKind = { kind: "unknown", format: "" };
let lastVolume = null;
let downloadUrls = [];

document.addEventListener("DOMContentLoaded", () => {
  $("ground-btn").addEventListener("click", ground);
  $("ask-btn").addEventListener("click", ask);
  $("report-btn").addEventListener("click", report);
  $("form").addEventListener("submit", (e) => { e.preventDefault(); ground(); });
  $("file").addEventListener("change", onFile);
  $("truth-file").addEventListener("change", () => showTruth().catch((err) => showError(err.message)));
  $("modality").addEventListener("change", showSuggestions);
  $("api-key").addEventListener("change", loadKnownPhrases);
  loadModelInfo();
});
