// medglip web page: posts the form to /v1/ground, /v1/ground-volume, /v1/vqa and /v1/report and
// shows the answers. Plain DOM, no build step, nothing from the internet; text is set with
// textContent only (phrases and messages never become HTML).
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
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
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

function showGrounding(result) {
  const tbody = $("results").querySelector("tbody");
  tbody.replaceChildren();
  $("box-header").textContent = "Box (x0, y0, x1, y1)";
  let n = 0;
  for (const p of result.phrases) {
    p.boxes.forEach((box, i) => {
      n += 1;
      addRow(tbody, [String(n), p.phrase, fmt(p.scores[i], 3), box.map((v) => fmt(v, 1)).join(", ")]);
    });
  }
  setImage("overlay-img", result.overlay_png);
  if (window.medglipViewer) window.medglipViewer.hide();
  return n;
}

function showVolume(result) {
  const tbody = $("results").querySelector("tbody");
  tbody.replaceChildren();
  $("box-header").textContent = "Slices / world box (LPS mm)";
  result.objects.forEach((o, i) => {
    const world = o.world_box_mm.map((c) => c.map((v) => fmt(v, 1)).join(", ")).join(" → ");
    addRow(tbody, [String(i + 1), o.phrase, fmt(o.score, 3), `${o.slices[0]}–${o.slices[1]}: ${world}`]);
  });
  setImage("overlay-img", null);
  return result.objects.length;
}

// The grounded volume in the viewer (when the answer carries it); a viewer failure is shown, the table stays.
async function showInViewer(result) {
  if (!window.medglipViewer) return;
  try {
    await window.medglipViewer.show(result);
  } catch (err) {
    showError(`the viewer could not show the volume: ${err.message}`);
  }
}

async function ground() {
  showError("");
  const volume = $("volume").checked;
  const form = baseForm("phrases");
  const thr = $("score-threshold").value;
  if (thr !== "") form.append("score_threshold", thr);
  if (!volume) {
    form.append("masks", $("masks").checked ? "true" : "false");
    form.append("overlay", "true");
    form.append("top_k", "5");  // the best five boxes per phrase: a readable table and overlay
  } else {
    // the volume as NIfTI for the viewer; with masks also the label map, DICOM-SEG and SR (DICOM input)
    form.append("outputs", $("masks").checked ? "auto,volume" : "volume");
  }
  setBusy("grounding…");
  try {
    const result = await post(volume ? "/v1/ground-volume" : "/v1/ground", form);
    const n = volume ? showVolume(result) : showGrounding(result);
    const noun = volume ? (n === 1 ? "object" : "objects") : (n === 1 ? "box" : "boxes");
    $("status").textContent = `${n} ${noun} (${result.modality}, ${result.modality_source})`;
    if (volume) await showInViewer(result);
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  } finally {
    for (const id of ["ground-btn", "ask-btn", "report-btn"]) $(id).disabled = false;
  }
}

async function ask() {
  showError("");
  const form = baseForm(null);
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
      li.textContent = f ? `${number}. ${f.phrase} (score ${fmt(f.score, 2)}): ${f.location}` : `finding ${number}`;
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
    $("report").textContent = result.markdown;
    setImage("report-img", result.overlay_png);
    $("status").textContent = "report ready";
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  } finally {
    for (const id of ["ground-btn", "ask-btn", "report-btn"]) $(id).disabled = false;
  }
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
}

document.addEventListener("DOMContentLoaded", () => {
  $("ground-btn").addEventListener("click", ground);
  $("ask-btn").addEventListener("click", ask);
  $("report-btn").addEventListener("click", report);
  $("form").addEventListener("submit", (e) => { e.preventDefault(); ground(); });
  loadModelInfo();
});
