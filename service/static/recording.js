// SeisLens page: the recording view (classify a miniSEED window: components, spectrogram,
// class bars, source parameters, similar events; scan a long recording: job progress and
// a timeline of detections).
"use strict";

const COMPONENTS = ["Z", "N", "E"];
const CLASS_COLOURS = { earthquake: "#c0392b", explosion: "#e67e22", surface: "#2e86c1", noise: "#7f8c8d" };
const LONG_FILE_BYTES = 1_500_000; // larger files are scanned by default (about 20 min or more)
const POLL_MS = 700;

const classColour = (label) => CLASS_COLOURS[label] || "#8e44ad";

/** The three components of a window as min/max envelopes, one row each, P marked. */
function drawWaveform(cv, w) {
  const env = int8(w.waveform);
  const left = 24, rowH = 70, top = 4, bottom = 22;
  cv.width = left + w.buckets + 6;
  cv.height = top + 3 * rowH + bottom;
  const ctx = cv.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, cv.width, cv.height);
  ctx.font = "12px system-ui, sans-serif";
  for (let c = 0; c < 3; c++) {
    const mid = top + c * rowH + rowH / 2;
    ctx.fillStyle = "#222";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(COMPONENTS[c], 4, mid);
    ctx.fillStyle = "#1f3b5a";
    for (let b = 0; b < w.buckets; b++) {
      const lo = env[(c * w.buckets + b) * 2] / 127, hi = env[(c * w.buckets + b) * 2 + 1] / 127;
      const y0 = mid - hi * (rowH / 2 - 3), y1 = mid - lo * (rowH / 2 - 3);
      ctx.fillRect(left + b, y0, 1, Math.max(1, y1 - y0));
    }
  }
  if (w.p_offset_s !== null) {
    const x = left + w.p_offset_s / w.bucket_s;
    ctx.fillStyle = "#c0392b";
    ctx.fillRect(Math.round(x), top, 1, 3 * rowH);
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText("P", x + 3, top);
  }
  timeAxis(ctx, left, w.buckets, top + 3 * rowH, w.seconds);
}

function timeAxis(ctx, left, width, y, seconds) {
  ctx.fillStyle = "#222";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of ticks(0, seconds, 6)) {
    const x = left + (t / seconds) * width;
    ctx.fillRect(Math.round(x), y, 1, 4);
    ctx.fillText(`${t} s`, x, y + 5);
  }
}

/** The log spectrogram of each component (frequency up, time across). */
function drawSpectrogram(cv, w) {
  const spec = int8(w.spectrogram);
  const [nc, nf, nt] = w.spectrogram_shape;
  const left = 24, sx = 5, sy = 1, top = 4, bottom = 22, gap = 6;
  cv.width = left + nt * sx + 6;
  cv.height = top + nc * (nf * sy + gap) + bottom;
  const ctx = cv.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, cv.width, cv.height);
  ctx.font = "12px system-ui, sans-serif";
  for (let c = 0; c < nc; c++) {
    const y0 = top + c * (nf * sy + gap);
    const img = imageOf(nt, nf, (x, y) => (spec[(c * nf + (nf - 1 - y)) * nt + x] + 127) / 254, "spectrum");
    blit(ctx, img, left, y0, nt * sx, nf * sy);
    ctx.fillStyle = "#222";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(COMPONENTS[c], 4, y0 + (nf * sy) / 2);
  }
  timeAxis(ctx, left, nt * sx, top + nc * (nf * sy + gap) - gap, w.seconds);
}

function classBars(probabilities) {
  return el("div", { class: "bars" }, Object.entries(probabilities).map(([label, p]) =>
    el("div", { class: "bar-row" },
      el("span", { class: "bar-label", text: label }),
      el("span", { class: "bar-track" },
        el("span", { class: "bar", style: `width:${(p * 100).toFixed(1)}%;background:${classColour(label)}`,
          "data-label": label, "data-probability": String(p) })),
      el("span", { class: "bar-value", text: `${(p * 100).toFixed(1)} %` }))));
}

function quantity(q, digits) {
  if (!q) return "—";
  const spread = q.spread === undefined || q.spread === null ? "" : ` ± ${q.spread.toFixed(digits)}`;
  const unit = q.unit.startsWith("magnitude") ? "" : ` ${q.unit}`;
  const method = q.method === "s_minus_p" ? " (from S − P)" : "";
  return `${q.value.toFixed(digits)}${spread}${unit}${method}`;
}

function travelTimeNote(check) {
  if (!check) return "";
  if (!check.s_pick) return `S − P check: ${check.reason}`;
  const pick = `S pick ${check.s_pick.s_time} (S − P ${check.s_pick.s_minus_p_s.toFixed(1)} s, ratio ${check.s_pick.ratio.toFixed(0)})`;
  const depth = check.depth_km === null ? "no depth in 0–200 km" : `depth ${check.depth_km.toFixed(1)} km`;
  const model = `the model's ${check.model_depth_km.toFixed(1)} km`;
  const relabel = check.relabelled_from ? `; too deep for an ${check.relabelled_from} (the probabilities' type), so the type is earthquake` : "";
  return check.applied ? `${pick}: ${depth}, replacing ${model}${relabel}` : `${pick}: ${depth}; kept ${model} (${check.reason})`;
}

function stationCard(s, preview) {
  const w = s.window;
  const card = el("article", { class: "station" },
    el("h3", { text: `${s.station}: ${s.label} (${(s.probabilities[s.label] * 100).toFixed(0)} %` +
      (s.travel_time && s.travel_time.relabelled_from ? `; ${s.travel_time.relabelled_from} by the probabilities` : "") + ")" }),
    el("p", { class: "muted", text: `channels ${s.channels.join(" ")}; window ${w.start} – ${w.end} (${w.rule}` +
      (w.p_time ? `, P ${w.p_time}` : "") + (w.padded_s ? `, ${w.padded_s} s padded` : "") + ")" }));
  if (preview) {
    const wave = canvas(10, 10, { class: "waveform", role: "img", "aria-label": "three components" });
    const spec = canvas(10, 10, { class: "spectrogram", role: "img", "aria-label": "spectrogram" });
    drawWaveform(wave, preview);
    drawSpectrogram(spec, preview);
    card.append(el("div", { class: "plots" },
      el("figure", {}, el("div", { class: "scroll" }, wave), el("figcaption", { text: "Z, N, E (each scaled to its peak), P pick in red" })),
      el("figure", {}, el("div", { class: "scroll" }, spec), el("figcaption", { text: "log spectrogram 1–50 Hz, as the encoder sees it" }))));
  }
  const spreadNote = [s.distance_km, s.depth_km, s.magnitude].some((q) => q && q.spread != null)
    ? " (± the spread over the similar library events)" : "";
  card.append(el("div", { class: "cols" },
    el("div", {}, el("h4", { text: "Event type" }), classBars(s.probabilities)),
    el("div", {}, el("h4", { text: "Source" + spreadNote }),
      table(["distance", "depth", "magnitude"], [[quantity(s.distance_km, 1), quantity(s.depth_km, 1), quantity(s.magnitude, 2)]],
        { class: "source" }),
      el("p", { class: "muted", text: travelTimeNote(s.travel_time) }))));
  card.append(el("h4", { text: "Similar library events" }),
    s.similar.length
      ? table(["#", "score", "type", "station", "magnitude", "distance (km)", "depth (km)"],
        s.similar.map((e) => [String(e.rank), e.score.toFixed(3), e.label, e.metadata.station ?? "",
          fmt(e.metadata.magnitude), fmt(e.metadata.distance_km), fmt(e.metadata.depth_km)]), { class: "similar" })
      : el("p", { class: "muted", text: "no similar events (the bundle has no events index)" }));
  return card;
}

async function classifyRecording(file, progress) {
  const form = () => {
    const f = new FormData();
    f.append("file", file);
    f.append("k", $("rk").value);
    if ($("rstation").value.trim()) f.append("station", $("rstation").value.trim());
    if ($("rp").value.trim()) f.append("p_arrival", $("rp").value.trim());
    return f;
  };
  const upload = (f) => f < 1 ? progress.show(`uploading the recording… ${Math.round(f * 100)} %`, f)
    : progress.show("reading, windowing and classifying…");
  const [classify, preview] = await Promise.allSettled([
    postForm("v1/events/classify", form(), upload),
    postForm("v1/page/recording-preview", form()),
  ]);
  if (classify.status === "rejected") throw classify.reason;
  const body = classify.value.body;
  const previews = preview.status === "fulfilled" ? preview.value.body.stations : [];
  const q = body.query;
  const out = $("rout");
  out.append(el("p", { class: "muted", text: `${q.filename}: ${q.traces} traces, stations ${q.stations_in_file.join(", ")}; ` +
    `${q.timing.total_ms.toFixed(0)} ms` + (q.notes.length ? `; ${q.notes.join("; ")}` : "") }));
  for (const s of body.stations) out.append(stationCard(s, previews.find((p) => p.station === s.station)));
  for (const s of body.skipped) out.append(el("p", { class: "error", text: `${s.station} skipped: ${s.reason}` }));
  out.hidden = false;
}

async function scanRecording(file) {
  const box = $("scan");
  box.hidden = false;
  const progress = new Progress($("sprogress"));
  $("timeline-box").replaceChildren();
  showError($("serror"), "");
  const f = new FormData();
  f.append("file", file);
  progress.show("uploading the recording for a scan…", 0);
  const { body, xhr } = await postForm(`v1/events/scans?stride_s=${$("rstride").value}`, f,
    (x) => progress.show(`uploading the recording for a scan… ${Math.round(x * 100)} %`, x));
  const url = xhr.getResponseHeader("Location") || body.links.self;
  let job = body;
  while (job.state === "queued" || job.state === "running") {
    const p = job.progress;
    progress.show(p ? `scan ${job.state}: ${p.windows_done} / ${p.windows_total} windows` +
      (p.station ? ` (${p.station})` : "") : `scan ${job.state}…`, p ? p.fraction : null);
    await new Promise((r) => setTimeout(r, POLL_MS));
    job = await getJson(url);
  }
  progress.hide();
  if (job.state === "failed") throw new Error(`the scan failed: ${job.error ? job.error.detail : "no reason given"}`);
  renderTimeline(job);
}

/** Detections of a finished scan on a time line, one row per station, coloured by type. */
function renderTimeline(job) {
  const r = job.result;
  const box = $("timeline-box");
  const t0 = Math.min(...r.stations.map((s) => Date.parse(s.start)));
  const t1 = Math.max(...r.stations.map((s) => Date.parse(s.end)));
  const seconds = Math.max(1, (t1 - t0) / 1000);
  const left = 70, width = 720, rowH = 22, top = 4;
  const cv = canvas(left + width + 10, top + r.stations.length * rowH + 24, { id: "timeline", role: "img",
    "aria-label": `${r.detections.length} detections over ${(seconds / 60).toFixed(1)} min` });
  const ctx = cv.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, cv.width, cv.height);
  ctx.font = "12px system-ui, sans-serif";
  r.stations.forEach((s, i) => {
    const y = top + i * rowH;
    ctx.fillStyle = "#f0f0f0";
    ctx.fillRect(left, y + 3, width, rowH - 6);
    ctx.fillStyle = "#222";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText(s.station, left - 6, y + rowH / 2);
    for (const d of r.detections.filter((d) => d.station === s.station)) {
      const x0 = left + ((Date.parse(d.start) - t0) / 1000 / seconds) * width;
      const x1 = left + ((Date.parse(d.end) - t0) / 1000 / seconds) * width;
      ctx.fillStyle = classColour(d.label);
      ctx.fillRect(x0, y + 3, Math.max(2, x1 - x0), rowH - 6);
    }
  });
  const minutes = seconds / 60;
  ctx.fillStyle = "#222";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const yAxis = top + r.stations.length * rowH;
  for (const t of ticks(0, minutes, 6)) {
    const x = left + (t / minutes) * width;
    ctx.fillRect(Math.round(x), yAxis, 1, 4);
    ctx.fillText(`${t} min`, x, yAxis + 5);
  }
  const legend = el("p", { class: "legend" }, r.classes.map((c) =>
    el("span", {}, el("i", { style: `background:${classColour(c)}` }), c)));
  box.append(el("p", { class: "muted", text: `${r.detections.length} detections, ${r.events.length} events on ` +
      `${r.stations.length} stations from ${new Date(t0).toISOString()} (${minutes.toFixed(1)} min)` }),
    cv, legend,
    table(["detection", "station", "start", "type", "p", "distance", "depth", "magnitude"],
      r.detections.map((d) => [d.id, d.station, d.start, d.label, (d.probabilities[d.label] * 100).toFixed(0) + " %",
        quantity(d.distance_km, 1), quantity(d.depth_km, 1), quantity(d.magnitude, 2)]), { class: "detections" }),
    el("p", {}, el("a", { href: job.links.csv, text: "detections.csv" }), " · ",
      el("a", { href: job.links.quakeml, text: "events.quakeml" }), " · ",
      el("a", { href: job.links.mseed, text: "probabilities.mseed" })));
}

async function submitRecording(ev) {
  ev.preventDefault();
  const file = $("rfile").files[0];
  const progress = new Progress($("rprogress"));
  showError($("rerror"), "");
  $("rout").replaceChildren();
  $("rout").hidden = true;
  $("scan").hidden = true;
  if (!file) { showError($("rerror"), "Choose a miniSEED file first."); return; }
  $("rsubmit").disabled = true;
  const jobs = [classifyRecording(file, progress).catch((err) => showError($("rerror"), err))
    .finally(() => progress.hide())];
  if ($("rscan").checked) jobs.push(scanRecording(file).catch((err) => { new Progress($("sprogress")).hide(); showError($("serror"), err); }));
  await Promise.all(jobs);
  $("rsubmit").disabled = false;
}

$("eform").addEventListener("submit", submitRecording);
$("rfile").addEventListener("change", () => {
  const file = $("rfile").files[0];
  if (file) $("rscan").checked = file.size > LONG_FILE_BYTES;
});
