// The findings of a /v1/ground-volume answer as the page lists and draws them, one per object (label n of the
// label map = object n): from the answer's `findings` (id, phrase, score, size_mm, size_source, side, slices,
// location) when the server sends them, else from `objects` and the label map's sidecar (`labels`).
// Sizes and sides are the server's; without `findings` the size is the mask's extent (labels) or the box's.
"use strict";

const medglipFindings = (() => {
  // colours of findings without a label map entry (with one, `labels` gives the colour the files use)
  const PALETTE = [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190]];

  function num(v, d) {
    return Number(v).toFixed(d);
  }

  function mm(v) {
    return Math.abs(v) >= 10 ? num(v, 0) : num(v, 1).replace(/\.0$/, "");
  }

  // the size as text: "34 × 12 × 9 mm" (mask or box)
  function sizeText(size) {
    if (size === null || size === undefined) return "";
    const values = Array.isArray(size) ? size : [size];
    return `${values.map(mm).join(" × ")} mm`;
  }

  // the box of voxel centres → its extent in mm along the array axes (edges, not centres)
  function boxExtent(voxelBox, geometry) {
    if (!voxelBox || !geometry) return null;
    return [0, 1, 2].map((a) => (voxelBox[1][a] - voxelBox[0][a] + 1) * geometry.spacing[a]);
  }

  function centreOf(worldBox) {
    return worldBox ? worldBox[0].map((v, a) => (v + worldBox[1][a]) / 2) : null;
  }

  // [{id, number, phrase, score, slices, size, sizeSource, side, location, color, centre, voxelBox, hasMask}]
  function ofVolume(result) {
    const objects = result.objects || [];
    const labels = (result.labels && result.labels.labels) || [];
    const geometry = result.geometry || null;
    const byLabel = new Map(labels.map((e) => [e.label, e]));
    const server = Array.isArray(result.findings) ? result.findings : null;
    const n = server ? Math.max(server.length, objects.length) : objects.length;
    const out = [];
    for (let i = 0; i < n; i += 1) {
      const o = objects[i] || {};
      const s = (server && server[i]) || {};
      const lab = byLabel.get(i + 1);
      const hasMask = Boolean(lab && lab.voxels);
      const size = s.size_mm !== undefined ? s.size_mm
        : (hasMask && lab.extent_mm ? lab.extent_mm : boxExtent(o.voxel_box, geometry));
      const sizeSource = s.size_source || (s.size_mm === undefined && hasMask && lab.extent_mm ? "mask" : "box");
      out.push({
        id: s.id || `F${i + 1}`,
        number: i + 1,
        phrase: s.phrase !== undefined ? s.phrase : o.phrase,
        score: s.score !== undefined ? s.score : o.score,
        slices: s.slices || o.slices || null,
        size: sizeText(size),
        sizeSource,
        side: s.side || null,
        location: typeof s.location === "string" ? s.location : "",
        color: lab ? lab.color : PALETTE[i % PALETTE.length],
        centre: hasMask && lab.centre_world_mm ? lab.centre_world_mm : centreOf(o.world_box_mm),
        voxelBox: o.voxel_box || null,
        hasMask,
      });
    }
    return out;
  }

  // the finding the viewer opens on: the best score
  function top(findings) {
    return findings.reduce((best, f) => (best === null || f.score > best.score ? f : best), null);
  }

  // "F1 · slices 6–8 · 15 × 14 × 3 mm (mask) · left"
  function details(f) {
    const parts = [f.id];
    if (f.slices) parts.push(f.slices[0] === f.slices[1] ? `slice ${f.slices[0]}` : `slices ${f.slices[0]}–${f.slices[1]}`);
    if (f.size) parts.push(`${f.size} (${f.sizeSource})`);
    if (f.side) parts.push(f.side);
    return parts.join(" · ");
  }

  return { ofVolume, top, details, sizeText };
})();

window.medglipFindings = medglipFindings;
