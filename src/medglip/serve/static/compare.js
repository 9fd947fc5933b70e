// The comparison view: when the user also picks a label map (ground truth: NIfTI, NRRD or MetaImage on the
// volume's grid or any grid in the same space), a second NiiVue shows the same volume with that label map
// beside the prediction. The two follow each other: crosshair (slice), view, window and mask opacity.
// The label map is read in the browser; it is never uploaded.
"use strict";

const medglipCompare = (() => {
  const byId = (id) => document.getElementById(id);
  const PALETTE = [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190]];
  const VIEWS = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3 };
  let nv = null;
  let following = false;

  function truthLut(max) {
    const lut = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
    for (let v = 1; v <= max; v += 1) {
      const c = PALETTE[(v - 1) % PALETTE.length];
      lut.R.push(c[0]); lut.G.push(c[1]); lut.B.push(c[2]); lut.A.push(255); lut.I.push(v); lut.labels.push(`label ${v}`);
    }
    return lut;
  }

  function follow() {
    const main = medglipViewer.niivue();
    if (!nv || !main || !main.volumes.length || nv.volumes.length < 2 || following) return;
    following = true;
    try {
      nv.setSliceType(VIEWS[medglipViewer.currentView()]);
      nv.scene.crosshairPos = nv.mm2frac(main.frac2mm(main.scene.crosshairPos));
      nv.volumes[0].cal_min = main.volumes[0].cal_min;
      nv.volumes[0].cal_max = main.volumes[0].cal_max;
      nv.setOpacity(1, Number(byId("overlay-opacity").value));
      nv.updateGLVolume();
      nv.drawScene();
    } finally {
      following = false;
    }
  }

  // the user clicked or scrolled in the ground-truth view: the prediction follows
  function lead(data) {
    const main = medglipViewer.niivue();
    if (following || !main || !data || !data.mm) return;
    following = true;
    try {
      main.scene.crosshairPos = main.mm2frac(data.mm);
      main.drawScene();
      main.createOnLocationChange();
    } finally {
      following = false;
    }
  }

  // Show `file` (the ground-truth label map) beside the prediction; the volume comes from the last answer.
  async function show(file, volumeBytes) {
    const frame = byId("truth-frame");
    frame.dataset.ready = "0";
    if (!file || !volumeBytes) {
      frame.hidden = true;
      return;
    }
    frame.hidden = false;
    byId("viewer").classList.add("comparing");
    if (!nv) {
      nv = new window.niivue.Niivue({
        backColor: [0, 0, 0, 1], crosshairColor: [1, 0.85, 0, 0.7], crosshairWidth: 0.2, isColorbar: false,
        isRadiologicalConvention: true, multiplanarShowRender: window.niivue.SHOW_RENDER.NEVER,
        dragAndDropEnabled: false, textHeight: 0.04,
      });
      await nv.attachToCanvas(byId("nv-truth-canvas"));
      nv.onLocationChange = lead;
    }
    while (nv.volumes.length) nv.removeVolumeByIndex(nv.volumes.length - 1);
    await nv.loadFromArrayBuffer(volumeBytes.slice(0), "volume.nii.gz");
    await nv.loadFromArrayBuffer(await file.arrayBuffer(), file.name);
    nv.opts.crosshairWidth = medglipViewer.niivue().opts.crosshairWidth;
    const truth = nv.volumes[1];
    let max = 0;
    for (const v of truth.img) if (v > max) max = v;
    truth.setColormapLabel(truthLut(Math.min(255, Math.round(max))));
    byId("truth-name").textContent = `(${file.name}; ${Math.round(max)} label${max === 1 ? "" : "s"})`;
    follow();
    frame.dataset.ready = "1";
  }

  // make room beside the prediction before it is drawn
  function prepare() {
    byId("truth-frame").hidden = false;
    byId("viewer").classList.add("comparing");
  }

  function hide() {
    byId("truth-frame").hidden = true;
    byId("viewer").classList.remove("comparing");
  }

  document.addEventListener("DOMContentLoaded", () => {
    medglipViewer.onChange(() => follow());
  });

  return { show, hide, prepare };
})();

window.medglipCompare = medglipCompare;
