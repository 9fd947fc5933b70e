// The volume viewer of the medglip web page: NiiVue (vendored in /static/niivue/, BSD-2-Clause) shows the
// grounded volume (volume.nii.gz from /v1/ground-volume) with its label map (labels.nii.gz) over it, coloured
// by the labels' colours, and each finding's box outline (boxes.js). It opens in the grounding plane on the
// slice of the best-scoring finding. The slice slider and the slice number count voxels along the file axis
// the view steps through (in the grounding plane: the answer's slice numbers); the mouse wheel scrolls too;
// window presets (CT: medglip's named HU windows) and right-drag set the window; each finding can be shown or
// hidden; clicking one moves the crosshair to its centre.
// Coordinates: the server speaks LPS millimetres (DICOM), NiiVue RAS: x and y change sign.
"use strict";

const medglipViewer = (() => {
  const byId = (id) => document.getElementById(id);
  const VIEWS = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3 };
  const NORMAL_LPS = { axial: 2, coronal: 1, sagittal: 0, multiplanar: 2 };  // the LPS axis a view steps along
  let nv = null;
  let view = "axial";
  let result = null;
  let findings = [];
  let hidden = new Set();
  let geometry = null;  // the input's grid: {spacing, origin, direction (row-major, columns = array axes)}
  let ctWindows = {};
  let drawnBoxes = [];
  const listeners = [];

  function bytesOf(base64) {
    const bin = atob(base64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
    return out;
  }

  function lpsToRas(p) {
    return [-p[0], -p[1], p[2]];
  }

  // LPS millimetres → (fractional) voxel index (i, j, k) of the input's file (direction columns are orthonormal)
  function lpsToVoxel(p) {
    if (!geometry) return null;
    const d = geometry.direction;
    const rel = [0, 1, 2].map((a) => p[a] - geometry.origin[a]);
    return [0, 1, 2].map((ax) => (d[ax] * rel[0] + d[3 + ax] * rel[1] + d[6 + ax] * rel[2]) / geometry.spacing[ax]);
  }

  function crosshairVoxel() {
    if (!nv || !nv.volumes.length) return null;
    const ras = nv.frac2mm(nv.scene.crosshairPos);
    return lpsToVoxel([-ras[0], -ras[1], ras[2]]);
  }

  // the file axis the current view steps through: the one whose direction is closest to the view's normal
  function stepAxis() {
    if (!geometry) return 2;
    const n = NORMAL_LPS[view];
    const d = geometry.direction;
    return [0, 1, 2].reduce((best, a) => (Math.abs(d[3 * n + a]) > Math.abs(d[3 * n + best]) ? a : best), 0);
  }

  function viewerOptions() {
    const N = window.niivue;
    return {
      backColor: [0, 0, 0, 1], crosshairColor: [1, 0.85, 0, 0.7], crosshairWidth: 0.2, show3Dcrosshair: false,
      isColorbar: false, isRadiologicalConvention: true, multiplanarShowRender: N.SHOW_RENDER.NEVER,
      dragAndDropEnabled: false, textHeight: 0.04, dragMode: N.DRAG_MODE.contrast,
    };
  }

  async function ensureViewer() {
    if (nv) return nv;
    if (!window.niivue) throw new Error("the viewer (NiiVue) did not load");
    nv = new window.niivue.Niivue(viewerOptions());
    await nv.attachToCanvas(byId("nv-canvas"));
    nv.onLocationChange = onLocation;
    nv.onIntensityChange = () => { byId("window-preset").value = "custom"; showWindow(); notify("window"); };
    return nv;
  }

  function labelLut() {
    const lut = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
    for (const f of findings.filter((x) => x.hasMask).sort((a, b) => a.label - b.label)) {
      lut.R.push(f.color[0]); lut.G.push(f.color[1]); lut.B.push(f.color[2]);
      lut.A.push(hidden.has(f.id) ? 0 : 255);
      lut.I.push(f.label); lut.labels.push(`${f.id}: ${f.phrase}`);
    }
    return lut;
  }

  function fmt(v, d) {
    return Number(v).toFixed(d);
  }

  function notify(what) {
    for (const fn of listeners) fn(what);
  }

  function redrawBoxes() {
    const canvas = byId("nv-boxes");
    if (!nv || !byId("show-boxes").checked) {
      medglipBoxes.clear(canvas);
      drawnBoxes = [];
      return;
    }
    drawnBoxes = medglipBoxes.draw(canvas, nv, findings.filter((f) => !hidden.has(f.id)), view, geometry);
  }

  function onLocation(data) {
    const box = byId("viewer");
    const lps = data && data.mm ? [-data.mm[0], -data.mm[1], data.mm[2]] : null;
    const index = lps ? lpsToVoxel(lps) : null;
    const vox = index ? index.map((v) => Math.round(v)) : null;
    let text = "";
    if (vox) {
      box.dataset.vox = vox.join(",");
      text = `voxel (${vox.join(", ")}) · LPS (${lps.map((v) => fmt(v, 1)).join(", ")}) mm`;
      const values = data.values || [];
      const lab = values.length > 1 && values[1] ? Math.round(values[1].value) : 0;
      const hit = lab > 0 ? findings.find((f) => f.label === lab) : null;
      box.dataset.label = String(lab);
      if (hit) text += ` · ${hit.id}: ${hit.phrase}`;
    }
    byId("viewer-location").textContent = text;
    syncSlider();
    redrawBoxes();
    notify("location");
  }

  function syncSlider() {
    const vox = crosshairVoxel();
    if (!vox || !result) return;
    const a = stepAxis();
    const n = result.shape[a];
    const k = Math.max(0, Math.min(n - 1, Math.round(vox[a])));
    const slider = byId("slice-slider");
    slider.max = String(n - 1);
    slider.value = String(k);
    const plane = view === "multiplanar" ? result.plane : view;
    byId("slice-number").textContent = `${plane} slice ${k} (0–${n - 1})`;
    const s = Math.round(vox[result.slice_axis]);
    byId("viewer").dataset.slice = String(s);
  }

  function moveTo(lps) {
    nv.scene.crosshairPos = nv.mm2frac(lpsToRas(lps));
    nv.drawScene();
    nv.createOnLocationChange();
  }

  function onSlider() {
    const vox = crosshairVoxel();
    if (!vox) return;
    vox[stepAxis()] = Number(byId("slice-slider").value);
    moveTo(medglipBoxes.voxelToLps(geometry, vox));
  }

  function setView(name) {
    view = name in VIEWS ? name : "axial";
    for (const b of document.querySelectorAll("#viewer button.view")) {
      b.classList.toggle("active", b.dataset.view === view);
    }
    if (nv) {
      nv.setSliceType(VIEWS[view]);
      syncSlider();
      redrawBoxes();
    }
    notify("view");
  }

  function goTo(id) {
    const f = findings.find((x) => x.id === id);
    if (!nv || !f || !f.centre) return;
    moveTo(f.centre);
    for (const b of document.querySelectorAll("#findings button.finding")) {
      b.classList.toggle("current", b.dataset.id === id);
    }
  }

  function setShown(id, shown) {
    if (shown) hidden.delete(id); else hidden.add(id);
    if (nv && nv.volumes.length > 1) {
      nv.volumes[1].setColormapLabel(labelLut());
      nv.updateGLVolume();
    }
    redrawBoxes();
  }

  function listFindings() {
    const list = byId("findings");
    list.replaceChildren();
    for (const f of findings) {
      const li = document.createElement("li");
      const shown = document.createElement("input");
      shown.type = "checkbox";
      shown.checked = !hidden.has(f.id);
      shown.className = "shown";
      shown.dataset.id = f.id;
      shown.title = `show ${f.id}`;
      shown.addEventListener("change", () => setShown(f.id, shown.checked));
      const b = document.createElement("button");
      b.type = "button";
      b.className = "finding";
      b.dataset.id = f.id;
      b.dataset.label = String(f.label);
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.backgroundColor = `rgb(${f.color.join(",")})`;
      const tag = document.createElement("span");
      tag.className = "id";
      tag.textContent = f.id;
      const name = document.createElement("span");
      name.className = "phrase";
      name.textContent = `${f.phrase} (score ${fmt(f.score, 2)})`;
      const details = document.createElement("span");
      details.className = "details";
      details.textContent = medglipFindings.details(f);
      b.append(sw, tag, name, details);
      if (f.location) {
        const where = document.createElement("span");
        where.className = "where";
        where.textContent = f.location;
        b.append(where);
      }
      b.addEventListener("click", () => goTo(f.id));
      li.append(shown, b);
      list.appendChild(li);
    }
  }

  // window presets: CT → medglip's named HU windows; every modality → the robust and the full range
  function fillWindows() {
    const select = byId("window-preset");
    select.replaceChildren();
    const add = (value, text) => {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = text;
      select.appendChild(o);
    };
    if (result.modality === "CT") {
      for (const [name, w] of Object.entries(ctWindows)) {
        add(`ct:${name}`, `${name.replace("_", " ")} (W${fmt(w[1] - w[0], 0)} L${fmt((w[0] + w[1]) / 2, 0)})`);
      }
    }
    add("auto", "auto (2–98 %)");
    add("full", "full range");
    add("custom", "custom (right-drag)");
  }

  function applyWindow(value) {
    if (!nv || !nv.volumes.length) return;
    const vol = nv.volumes[0];
    let range = null;
    if (value.startsWith("ct:")) range = ctWindows[value.slice(3)];
    else if (value === "auto") range = [vol.robust_min, vol.robust_max];
    else if (value === "full") range = [vol.global_min, vol.global_max];
    if (!range) return;
    vol.cal_min = range[0];
    vol.cal_max = range[1];
    nv.updateGLVolume();
    showWindow();
    notify("window");
  }

  function windowRange() {
    if (!nv || !nv.volumes.length) return null;
    return [nv.volumes[0].cal_min, nv.volumes[0].cal_max];
  }

  function showWindow() {
    const r = windowRange();
    byId("window-text").textContent = r ? `W ${fmt(r[1] - r[0], 0)} · L ${fmt((r[0] + r[1]) / 2, 0)}` : "";
  }

  // Show a /v1/ground-volume answer that carries files["volume.nii.gz"] (and labels.nii.gz with masks).
  async function show(answer, options = {}) {
    const files = answer.files || {};
    const box = byId("viewer");
    box.dataset.ready = "0";
    if (!files["volume.nii.gz"]) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    result = answer;
    ctWindows = options.ctWindows || {};
    await ensureViewer();
    while (nv.volumes.length) nv.removeVolumeByIndex(nv.volumes.length - 1);
    findings = medglipFindings.ofVolume(answer);
    hidden = new Set();
    geometry = answer.geometry || (answer.labels && answer.labels.geometry) || null;
    await nv.loadFromArrayBuffer(bytesOf(files["volume.nii.gz"].base64).buffer, "volume.nii.gz");
    if (files["labels.nii.gz"]) {
      await nv.loadFromArrayBuffer(bytesOf(files["labels.nii.gz"].base64).buffer, "labels.nii.gz");
      nv.volumes[1].setColormapLabel(labelLut());
      nv.setOpacity(1, Number(byId("overlay-opacity").value));
      nv.updateGLVolume();
    }
    const dims = nv.volumes[0].dimsRAS.slice(1, 4);
    nv.opts.crosshairWidth = Math.max(0.05, (1.5 * Math.max(...dims)) / Math.max(1, nv.gl.canvas.height));
    fillWindows();
    const preset = answer.modality === "CT" && options.defaultCtWindow in ctWindows ? `ct:${options.defaultCtWindow}` : "auto";
    byId("window-preset").value = preset;
    applyWindow(preset);
    listFindings();
    setView(answer.plane in VIEWS ? answer.plane : "axial");
    const best = medglipFindings.top(findings);
    if (best) goTo(best.id);
    else nv.createOnLocationChange();
    await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));  // let the layout settle
    redrawBoxes();
    box.dataset.ready = "1";
    notify("shown");
  }

  function hide() {
    byId("viewer").hidden = true;
  }

  // Where the crosshair is drawn on the canvas (CSS pixels of the canvas element), for tests and tools.
  function crosshairCanvasXY() {
    if (!nv) return null;
    const pos = nv.frac2canvasPos(nv.scene.crosshairPos);
    if (!pos) return null;
    const canvas = byId("nv-canvas");
    const scale = canvas.clientWidth / canvas.width;
    return [pos[0] * scale, pos[1] * scale];
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll("#viewer button.view")) {
      b.addEventListener("click", () => setView(b.dataset.view));
    }
    byId("slice-slider").addEventListener("input", onSlider);
    byId("overlay-opacity").addEventListener("input", () => {
      if (nv && nv.volumes.length > 1) nv.setOpacity(1, Number(byId("overlay-opacity").value));
      notify("opacity");
    });
    byId("window-preset").addEventListener("change", (e) => applyWindow(e.target.value));
    byId("show-boxes").addEventListener("change", redrawBoxes);
    // NiiVue resizes its canvas with the page (e.g. when the ground truth appears beside it): redraw the boxes
    new ResizeObserver(() => requestAnimationFrame(redrawBoxes)).observe(byId("nv-canvas"));
  });

  return {
    show, hide, goTo, setView, setShown, crosshairCanvasXY, windowRange,
    boxes: () => drawnBoxes.map((b) => ({ id: b.id, rect: b.rect.slice() })),
    findings: () => findings.slice(),
    niivue: () => nv,
    currentView: () => view,
    onChange: (fn) => listeners.push(fn),
  };
})();

window.medglipViewer = medglipViewer;
