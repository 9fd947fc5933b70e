// Whether an uploaded file is a volume, from its first bytes (no upload): NIfTI (also gzipped), NRRD, MetaImage
// headers give the shape; a zip is a DICOM series; PNG / JPEG / BMP are pictures. Anything else (DICOM files,
// TIFF) is "unknown": the page sends it to /v1/ground and follows the server's X-Medglip-Endpoint answer.
// A volume is what the server calls one: three spatial axes, each longer than 1.
"use strict";

const medglipDetect = (() => {
  const HEAD = 4096;

  async function headBytes(file, n) {
    return new Uint8Array(await file.slice(0, n).arrayBuffer());
  }

  async function gunzipHead(file) {
    if (typeof DecompressionStream === "undefined") return null;
    const reader = file.slice(0, 65536).stream().pipeThrough(new DecompressionStream("gzip")).getReader();
    const parts = [];
    let size = 0;
    try {
      while (size < HEAD) {
        const { value, done } = await reader.read();
        if (done) break;
        parts.push(value);
        size += value.length;
      }
    } catch (err) {
      if (!size) return null;  // a cut-off gzip stream still gives its first bytes
    } finally {
      reader.cancel().catch(() => {});
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  function niftiShape(b) {
    if (b.length < 348) return null;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (const little of [true, false]) {
      const size = dv.getInt32(0, little);
      if (size === 348) return [1, 2, 3].map((i) => dv.getInt16(40 + 2 * i, little));
      if (size === 540 && b.length >= 540) return [1, 2, 3].map((i) => Number(dv.getBigInt64(16 + 8 * i, little)));
    }
    return null;
  }

  function textHeader(b) {
    return new TextDecoder("latin1").decode(b.subarray(0, HEAD));
  }

  function fieldNumbers(text, pattern) {
    const m = text.match(pattern);
    return m ? m[1].trim().split(/\s+/).map(Number).filter((v) => Number.isFinite(v)) : null;
  }

  function startsWith(b, bytes) {
    return bytes.every((v, i) => b[i] === v);
  }

  function verdict(shape, format) {
    if (!shape) return { kind: "unknown", format };
    const spatial = shape.slice(0, 3);
    const volume = spatial.length === 3 && spatial.every((s) => s > 1);
    return { kind: volume ? "volume" : "image", format, shape: spatial };
  }

  // {kind: "volume" | "image" | "unknown", format, shape?}
  async function kindOf(file) {
    if (!file) return { kind: "unknown", format: "" };
    let b = await headBytes(file, HEAD);
    if (startsWith(b, [0x50, 0x4b, 0x03, 0x04])) return { kind: "volume", format: "zip of a DICOM series" };
    if (startsWith(b, [0x89, 0x50, 0x4e, 0x47]) || startsWith(b, [0xff, 0xd8, 0xff]) || startsWith(b, [0x42, 0x4d])) {
      return { kind: "image", format: "picture" };
    }
    if (startsWith(b, [0x1f, 0x8b])) {
      b = await gunzipHead(file);
      if (!b) return { kind: "unknown", format: "gzip" };
    }
    const nifti = niftiShape(b);
    if (nifti) return verdict(nifti, "NIfTI");
    const text = textHeader(b);
    if (text.startsWith("NRRD")) return verdict(fieldNumbers(text, /^sizes:([^\n]*)$/m), "NRRD");
    if (/^\s*ObjectType\s*=/m.test(text) || /^\s*NDims\s*=/m.test(text)) {
      return verdict(fieldNumbers(text, /^\s*DimSize\s*=([^\n]*)$/m), "MetaImage");
    }
    return { kind: "unknown", format: "" };
  }

  return { kindOf };
})();

window.medglipDetect = medglipDetect;
