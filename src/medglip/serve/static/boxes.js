// Box outlines over the NiiVue canvas: each shown finding's 3D voxel box (voxel edges) cut by the slice the
// view shows, drawn on a transparent canvas laid over NiiVue's, with the finding's id. Single-plane views only
// (in "all three" a point's tile is ambiguous). Coordinates: voxel (i, j, k) → LPS mm (the answer's geometry)
// → RAS mm (x and y change sign) → NiiVue's volume fraction → canvas pixels.
"use strict";

const medglipBoxes = (() => {
  // the fraction axis a view steps along and the two it shows
  const PLANES = { axial: { normal: 2, shown: [0, 1] }, coronal: { normal: 1, shown: [0, 2] },
    sagittal: { normal: 0, shown: [1, 2] } };

  // LPS mm of a (fractional) voxel index: origin + direction · (spacing ∘ index); direction row-major
  function voxelToLps(geometry, v) {
    const d = geometry.direction;
    const s = [0, 1, 2].map((a) => v[a] * geometry.spacing[a]);
    return [0, 1, 2].map((r) => geometry.origin[r] + d[3 * r] * s[0] + d[3 * r + 1] * s[1] + d[3 * r + 2] * s[2]);
  }

  // the box's range in NiiVue's volume fractions: [min[3], max[3]]
  function fracRange(nv, geometry, voxelBox) {
    const lo = [Infinity, Infinity, Infinity];
    const hi = [-Infinity, -Infinity, -Infinity];
    for (let c = 0; c < 8; c += 1) {
      const v = [0, 1, 2].map((a) => ((c >> a) & 1 ? voxelBox[1][a] + 0.5 : voxelBox[0][a] - 0.5));
      const lps = voxelToLps(geometry, v);
      const f = nv.mm2frac([-lps[0], -lps[1], lps[2]]);
      for (let a = 0; a < 3; a += 1) { lo[a] = Math.min(lo[a], f[a]); hi[a] = Math.max(hi[a], f[a]); }
    }
    return [lo, hi];
  }

  function clamp01(v) {
    return Math.max(0, Math.min(1, v));
  }

  // Draw the outlines; returns [{id, rect: [x, y, w, h] in canvas pixels}] of what was drawn.
  function draw(canvas, nv, findings, view, geometry) {
    const target = nv.gl.canvas;
    if (canvas.width !== target.width || canvas.height !== target.height) {
      canvas.width = target.width;
      canvas.height = target.height;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const plane = PLANES[view];
    if (!plane || !geometry || !nv.volumes.length) return [];
    const pos = nv.scene.crosshairPos;
    const eps = 1e-6;
    const drawn = [];
    const px = Math.max(1, Math.round(canvas.width / 360));
    ctx.lineWidth = 2 * px;
    ctx.font = `bold ${14 * px}px system-ui, sans-serif`;
    ctx.textBaseline = "bottom";
    for (const f of findings) {
      if (!f.voxelBox) continue;
      const [lo, hi] = fracRange(nv, geometry, f.voxelBox);
      if (pos[plane.normal] < lo[plane.normal] - eps || pos[plane.normal] > hi[plane.normal] + eps) continue;
      const a = [0, 0, 0];
      const b = [0, 0, 0];
      a[plane.normal] = b[plane.normal] = pos[plane.normal];
      for (const ax of plane.shown) { a[ax] = clamp01(lo[ax]); b[ax] = clamp01(hi[ax]); }
      const ca = nv.frac2canvasPos(a);
      const cb = nv.frac2canvasPos(b);
      if (!ca || !cb) continue;
      const rect = [Math.min(ca[0], cb[0]), Math.min(ca[1], cb[1]), Math.abs(ca[0] - cb[0]), Math.abs(ca[1] - cb[1])];
      const colour = `rgb(${f.color.join(",")})`;
      ctx.strokeStyle = colour;
      ctx.strokeRect(rect[0], rect[1], rect[2], rect[3]);
      ctx.fillStyle = colour;
      ctx.fillText(f.id, rect[0], rect[1] - 2 * px);
      drawn.push({ id: f.id, rect });
    }
    return drawn;
  }

  function clear(canvas) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }

  return { draw, clear, voxelToLps };
})();

window.medglipBoxes = medglipBoxes;
