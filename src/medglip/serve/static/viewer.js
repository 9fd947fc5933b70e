// The volume viewer of the medglip web page: NiiVue (vendored in /static/niivue/, BSD-2-Clause) shows
// the grounded volume (volume.nii.gz from /v1/ground-volume) with its label map (labels.nii.gz) as an
// overlay coloured by the labels' colours, in axial / coronal / sagittal or all three views; the mouse
// wheel or the slice slider scrolls through slices; clicking a finding moves the crosshair to its centre.
// Coordinates: the server speaks LPS millimetres (DICOM), NiiVue RAS: x and y change sign.
"use strict";

const medglipViewer = (() => {
  const byId = (id) => document.getElementById(id);
  const VIEWS = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3 };
  // the RAS axis a view scrolls along (multiplanar: axial)
  const SLIDER_AXIS = { axial: 2, coronal: 1, sagittal: 0, multiplanar: 2 };
  let nv = null;
  let view = "multiplanar";
  let findings = [];
  let urls = [];
  let geometry = null;  // the input's grid: {spacing, origin, direction (row-major, columns = array axes)}

  function bytesOf(base64) {
    const bin = atob(base64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
    return out;
  }

  function lpsToRas(p) {
    return [-p[0], -p[1], p[2]];
  }

  // LPS millimetres → voxel index (i, j, k) of the input's file (direction columns are orthonormal)
  function lpsToVoxel(p) {
    if (!geometry) return null;
    const d = geometry.direction;
    const rel = [0, 1, 2].map((a) => p[a] - geometry.origin[a]);
    return [0, 1, 2].map((ax) => (d[ax] * rel[0] + d[3 + ax] * rel[1] + d[6 + ax] * rel[2]) / geometry.spacing[ax]);
  }

  // Each finding: number, phrase, score, colour, centre (LPS mm) and whether it is in the label map.
  function findingsOf(result) {
    const labels = result.labels && result.labels.labels;
    if (labels) {
      return labels.map((e) => ({
        number: e.label, phrase: e.phrase, score: e.score, color: e.color, centre: e.centre_world_mm,
        voxels: e.voxels, extent: e.extent_mm,
      }));
    }
    const palette = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]];
    return (result.objects || []).map((o, i) => ({
      number: i + 1, phrase: o.phrase, score: o.score, color: palette[i % palette.length],
      centre: o.world_box_mm[0].map((v, a) => (v + o.world_box_mm[1][a]) / 2), voxels: null, extent: null,
    }));
  }

  async function ensureViewer() {
    if (nv) return nv;
    if (!window.niivue) throw new Error("the viewer (NiiVue) did not load");
    nv = new window.niivue.Niivue({
      backColor: [0, 0, 0, 1], crosshairColor: [1, 0.85, 0, 1], crosshairWidth: 1, show3Dcrosshair: false,
      isColorbar: false, isRadiologicalConvention: true, multiplanarShowRender: window.niivue.SHOW_RENDER.NEVER,
      dragAndDropEnabled: false, textHeight: 0.04,
    });
    await nv.attachToCanvas(byId("nv-canvas"));
    nv.onLocationChange = onLocation;
    return nv;
  }

  function labelLut(entries) {
    const lut = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
    for (const f of entries) {
      lut.R.push(f.color[0]); lut.G.push(f.color[1]); lut.B.push(f.color[2]); lut.A.push(255);
      lut.I.push(f.number); lut.labels.push(`${f.number}: ${f.phrase}`);
    }
    return lut;
  }

  function fmt(v, d) {
    return Number(v).toFixed(d);
  }

  function onLocation(data) {
    const box = byId("viewer");
    const lps = data && data.mm ? [-data.mm[0], -data.mm[1], data.mm[2]] : null;
    const index = lps ? lpsToVoxel(lps) : null;
    const vox = index ? index.map((v) => Math.round(v)) : null;
    if (vox) box.dataset.vox = vox.join(",");
    let text = "";
    if (vox) {
      text = `voxel (${vox.join(", ")}) · LPS (${lps.map((v) => fmt(v, 1)).join(", ")}) mm`;
      const values = data.values || [];
      const lab = values.length > 1 && values[1] ? Math.round(values[1].value) : 0;
      const hit = findings.find((f) => f.number === lab);
      box.dataset.label = String(lab);
      if (hit) text += ` · label ${hit.number}: ${hit.phrase}`;
    }
    byId("viewer-location").textContent = text;
    syncSlider();
  }

  function sliderAxis() {
    return SLIDER_AXIS[view];
  }

  function syncSlider() {
    if (!nv || !nv.volumes.length) return;
    const axis = sliderAxis();
    const dims = nv.volumes[0].dimsRAS;
    const n = dims[axis + 1];
    const slider = byId("slice-slider");
    slider.max = String(n - 1);
    slider.value = String(Math.max(0, Math.min(n - 1, Math.round(nv.scene.crosshairPos[axis] * n - 0.5))));
  }

  function onSlider() {
    if (!nv || !nv.volumes.length) return;
    const axis = sliderAxis();
    const n = nv.volumes[0].dimsRAS[axis + 1];
    const pos = Array.from(nv.scene.crosshairPos);
    pos[axis] = (Number(byId("slice-slider").value) + 0.5) / n;
    nv.scene.crosshairPos = pos;
    nv.drawScene();
    nv.createOnLocationChange(axis);
  }

  function setView(name) {
    view = name in VIEWS ? name : "multiplanar";
    for (const b of document.querySelectorAll("#viewer button.view")) {
      b.classList.toggle("active", b.dataset.view === view);
    }
    if (nv) {
      nv.setSliceType(VIEWS[view]);
      syncSlider();
    }
  }

  function goTo(number) {
    const f = findings.find((x) => x.number === number);
    if (!nv || !f || !f.centre) return;
    nv.scene.crosshairPos = nv.mm2frac(lpsToRas(f.centre));
    nv.drawScene();
    nv.createOnLocationChange();
    for (const b of document.querySelectorAll("#findings button.finding")) {
      b.classList.toggle("current", Number(b.dataset.label) === number);
    }
  }

  function listFindings() {
    const list = byId("findings");
    list.replaceChildren();
    for (const f of findings) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "finding";
      b.dataset.label = String(f.number);
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.backgroundColor = `rgb(${f.color.join(",")})`;
      const size = f.extent ? `, ${f.extent.map((v) => fmt(v, 0)).join(" × ")} mm` : "";
      const text = document.createElement("span");
      text.textContent = `${f.phrase} (score ${fmt(f.score, 2)}${size})`;
      b.append(sw, text);
      b.addEventListener("click", () => goTo(f.number));
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  function listDownloads(files) {
    for (const u of urls) URL.revokeObjectURL(u);
    urls = [];
    const box = byId("downloads");
    box.replaceChildren();
    for (const [name, f] of Object.entries(files || {})) {
      if (name === "volume.nii.gz") continue;
      const a = document.createElement("a");
      const url = URL.createObjectURL(new Blob([bytesOf(f.base64)], { type: f.media_type }));
      urls.push(url);
      a.href = url;
      a.download = name;
      a.textContent = `${name} (${Math.max(1, Math.round(f.bytes / 1024))} kB)`;
      box.appendChild(a);
    }
  }

  // Show a /v1/ground-volume answer that carries files["volume.nii.gz"] (and labels.nii.gz with masks).
  async function show(result) {
    const files = result.files || {};
    const box = byId("viewer");
    box.dataset.ready = "0";
    if (!files["volume.nii.gz"]) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    await ensureViewer();
    while (nv.volumes.length) nv.removeVolumeByIndex(nv.volumes.length - 1);
    findings = findingsOf(result);
    geometry = result.geometry || (result.labels && result.labels.geometry) || null;
    await nv.loadFromArrayBuffer(bytesOf(files["volume.nii.gz"].base64).buffer, "volume.nii.gz");
    if (files["labels.nii.gz"]) {
      await nv.loadFromArrayBuffer(bytesOf(files["labels.nii.gz"].base64).buffer, "labels.nii.gz");
      nv.volumes[1].setColormapLabel(labelLut(findings.filter((f) => f.voxels)));
      nv.setOpacity(1, Number(byId("overlay-opacity").value));
      nv.updateGLVolume();
    }
    listFindings();
    listDownloads(files);
    setView(view);
    const first = findings.find((f) => f.voxels !== 0);
    if (first) goTo(first.number);
    else nv.createOnLocationChange();
    box.dataset.ready = "1";
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
    });
  });

  return { show, hide, goTo, setView, crosshairCanvasXY };
})();

window.medglipViewer = medglipViewer;
