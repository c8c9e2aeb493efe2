// SeisLens page: colour maps, images from arrays and the colour bar (no dependencies).
"use strict";

function hexStops(stops) {
  return stops.map(([t, hex]) => [t, parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16),
    parseInt(hex.slice(5, 7), 16)]);
}

/** Colour maps as stops (position in [0, 1], colour); linear between stops. */
const MAPS = {
  // velocity: viridis' colours at nine positions (as the PNG routes draw with matplotlib)
  velocity: hexStops([[0, "#440154"], [0.125, "#482878"], [0.25, "#3e4989"], [0.375, "#31688e"],
    [0.5, "#26828e"], [0.625, "#1f9e89"], [0.75, "#35b779"], [0.875, "#6ece58"], [1, "#fde725"]]),
  // gather amplitudes: negative blue, zero white, positive red
  amplitude: hexStops([[0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"],
    [1, "#b2182b"]]),
  // spectrogram (log magnitude): dark to light
  spectrum: hexStops([[0, "#000004"], [0.25, "#51127c"], [0.5, "#b73779"], [0.75, "#fc8961"],
    [1, "#fcfdbf"]]),
};

/** 256-entry RGB lookup table of a colour map. */
function lut(name) {
  const stops = MAPS[name];
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 1;
    while (k < stops.length - 1 && stops[k][0] < t) k++;
    const [t0, r0, g0, b0] = stops[k - 1];
    const [t1, r1, g1, b1] = stops[k];
    const f = t1 > t0 ? (t - t0) / (t1 - t0) : 0;
    out[3 * i] = r0 + f * (r1 - r0);
    out[3 * i + 1] = g0 + f * (g1 - g0);
    out[3 * i + 2] = b0 + f * (b1 - b0);
  }
  return out;
}
const LUTS = Object.fromEntries(Object.keys(MAPS).map((k) => [k, lut(k)]));

/** An offscreen canvas (w × h pixels) whose pixel (x, y) is value(x, y) in [0, 1]
 *  through colour map `map`; NaN draws light grey. */
function imageOf(w, h, value, map) {
  const off = document.createElement("canvas");
  off.width = w;
  off.height = h;
  const ctx = off.getContext("2d");
  const img = ctx.createImageData(w, h);
  const table = LUTS[map];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = value(x, y);
      const p = 4 * (y * w + x);
      if (Number.isNaN(v)) {
        img.data[p] = img.data[p + 1] = img.data[p + 2] = 221;
      } else {
        const i = 3 * Math.round(255 * Math.max(0, Math.min(1, v)));
        img.data[p] = table[i]; img.data[p + 1] = table[i + 1]; img.data[p + 2] = table[i + 2];
      }
      img.data[p + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return off;
}

/** Draw a source canvas scaled into (x, y, w, h) of ctx, without smoothing (cells stay
 *  sharp). */
function blit(ctx, source, x, y, w, h) {
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(source, x, y, w, h);
}

/** Round numbers for axis ticks between lo and hi (about `count` of them). */
function ticks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(6));
  return out;
}

/** A horizontal colour bar from vmin to vmax with ticks and a label, on `cv`. */
function drawColourbar(cv, vmin, vmax, map, label) {
  if (cv.clientWidth > 0) cv.width = Math.round(cv.clientWidth); // sharp text at any width
  const ctx = cv.getContext("2d");
  const w = cv.width, h = cv.height, pad = 16, barH = Math.round(h * 0.38);
  ctx.clearRect(0, 0, w, h);
  const grad = imageOf(256, 1, (x) => x / 255, map);
  blit(ctx, grad, pad, 2, w - 2 * pad, barH);
  ctx.strokeStyle = "#555";
  ctx.strokeRect(pad + 0.5, 2.5, w - 2 * pad - 1, barH - 1);
  ctx.fillStyle = "#222";
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of ticks(vmin, vmax, 5)) {
    const x = pad + ((t - vmin) / (vmax - vmin)) * (w - 2 * pad);
    ctx.fillRect(Math.round(x), 2 + barH, 1, 4);
    ctx.fillText(String(t), x, barH + 8);
  }
  ctx.fillText(label, w / 2, barH + 24);
}
