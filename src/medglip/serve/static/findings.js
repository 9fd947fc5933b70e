// The findings of an answer as the page lists and draws them. With the server's `findings` (id, phrase, score,
// size_mm, size_source, side, slices, location, location_mm: the findings model every surface renders) the
// page shows those, in their order and with their ids; a volume's finding is tied to its object (and so to its
// label in the label map: label n = object n) by phrase, slice range and world box, since findings are ordered
// by phrase and score, not as the objects. Without `findings` (an older server) each object is a finding
// F1, F2, ... in object order, its size the mask's extent (labels) or the box's, its side unknown.
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

  // the object a server finding describes: same phrase and slices, the nearest world box (then score)
  function objectOf(s, objects, used) {
    let best = -1;
    let cost = Infinity;
    objects.forEach((o, j) => {
      if (used.has(j) || o.phrase !== s.phrase) return;
      if (s.slices && o.slices && (s.slices[0] !== o.slices[0] || s.slices[1] !== o.slices[1])) return;
      let c = Math.abs((o.score || 0) - (s.score || 0));
      if (s.world_box_mm && o.world_box_mm) {
        for (let k = 0; k < 2; k += 1) for (let a = 0; a < 3; a += 1) c += Math.abs(o.world_box_mm[k][a] - s.world_box_mm[k][a]);
      }
      if (c < cost) { cost = c; best = j; }
    });
    return best;
  }

  // [{id, label, phrase, score, slices, size, sizeSource, side, location, color, centre, voxelBox, hasMask}];
  // `label` is the finding's value in the label map (its object's number), `id` its name on every surface
  function ofVolume(result) {
    const objects = result.objects || [];
    const labels = (result.labels && result.labels.labels) || [];
    const geometry = result.geometry || null;
    const byLabel = new Map(labels.map((e) => [e.label, e]));
    const server = Array.isArray(result.findings) ? result.findings : null;
    const used = new Set();
    const pairs = server
      ? server.map((s) => { const j = objectOf(s, objects, used); if (j >= 0) used.add(j); return [s, j]; })
      : objects.map((o, j) => [{}, j]);
    return pairs.map(([s, j], i) => {
      const o = objects[j] || {};
      const lab = j >= 0 ? byLabel.get(j + 1) : undefined;
      const hasMask = Boolean(lab && lab.voxels);
      const fromServer = s.size_mm !== undefined && s.size_mm !== null;
      const size = fromServer ? s.size_mm : (hasMask && lab.extent_mm ? lab.extent_mm : boxExtent(o.voxel_box, geometry));
      return {
        id: s.id || `F${i + 1}`,
        label: j + 1,
        phrase: s.phrase !== undefined ? s.phrase : o.phrase,
        score: s.score !== undefined ? s.score : o.score,
        slices: s.slices || o.slices || null,
        size: sizeText(size),
        sizeSource: s.size_source || (!fromServer && hasMask && lab.extent_mm ? "mask" : "box"),
        side: s.side || null,
        location: typeof s.location === "string" ? s.location : "",
        color: lab ? lab.color : PALETTE[i % PALETTE.length],
        centre: hasMask && lab.centre_world_mm ? lab.centre_world_mm : (s.location_mm || centreOf(o.world_box_mm)),
        voxelBox: o.voxel_box || null,
        hasMask,
      };
    });
  }

  // The rows of a /v1/ground answer: [{id, phrase, score, box, size, sizeSource, side, location}], from its
  // `findings` when it has them (size in mm, else in pixels), else one per box in the order of `phrases`.
  function ofImage(result) {
    if (Array.isArray(result.findings)) {
      return result.findings.map((s, i) => {
        const mmSize = s.size_mm !== undefined && s.size_mm !== null;
        return {
          id: s.id || `F${i + 1}`, phrase: s.phrase, score: s.score, box: s.box || null,
          size: mmSize ? sizeText(s.size_mm) : (s.size_px ? sizeText(s.size_px).replace(/ mm$/, " px") : ""),
          sizeSource: s.size_source || "box", side: s.side || null, slices: null,
          location: typeof s.location === "string" ? s.location : "",
        };
      });
    }
    const out = [];
    for (const p of result.phrases || []) {
      p.boxes.forEach((box, i) => {
        out.push({ id: String(out.length + 1), phrase: p.phrase, score: p.scores[i], box, size: "", sizeSource: "",
          side: null, slices: null, location: "" });
      });
    }
    return out;
  }

  // the finding the viewer opens on: the best score
  function top(findings) {
    return findings.reduce((best, f) => (best === null || f.score > best.score ? f : best), null);
  }

  // "slices 6–8 · 15 × 14 × 3 mm (mask) · left"
  function details(f) {
    const parts = [];
    if (f.slices) parts.push(f.slices[0] === f.slices[1] ? `slice ${f.slices[0]}` : `slices ${f.slices[0]}–${f.slices[1]}`);
    if (f.size) parts.push(`${f.size} (${f.sizeSource})`);
    if (f.side) parts.push(f.side);
    return parts.join(" · ");
  }

  return { ofVolume, ofImage, top, details, sizeText };
})();

window.medglipFindings = medglipFindings;
