// SeisLens page: the shot-gather view (upload, the gather drawn, top-k models on one
// colour scale beside the estimate, descriptors with spreads, familiarity).
"use strict";

const GATHER = { scale: 2, gap: 12, left: 40, top: 18 };
const MODEL = { cell: 4, left: 46, bottom: 34, top: 6, right: 8 };
const VELOCITY_STEP = 100; // the shared scale is rounded outwards to this (m/s)

const gatherState = { results: [], models: [], estimate: null, body: null, selected: 0, vmin: 0, vmax: 1 };

/** Draw the (shots, samples, receivers) int8 preview as variable density, shots side by side. */
function drawGather(cv, p) {
  const data = int8(p.data);
  const { scale, gap, left, top } = GATHER;
  const shotW = p.receivers * scale;
  cv.width = left + p.shots * shotW + (p.shots - 1) * gap + 4;
  cv.height = top + p.samples + 22;
  const ctx = cv.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, cv.width, cv.height);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#222";
  for (let s = 0; s < p.shots; s++) {
    const x0 = left + s * (shotW + gap);
    const base = s * p.samples * p.receivers;
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    ctx.fillText(`shot ${s + 1}` + (p.shot_mask[s] ? "" : " (none)"), x0 + shotW / 2, top - 5);
    const img = imageOf(p.receivers, p.samples,
      (x, y) => (p.shot_mask[s] ? 0.5 + data[base + y * p.receivers + x] / 254 : NaN), "amplitude");
    blit(ctx, img, x0, top, shotW, p.samples);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const seconds = (p.samples * p.dt_ms) / 1000;
  for (const t of ticks(0, seconds, 5)) {
    const y = top + (t * 1000) / p.dt_ms;
    ctx.fillRect(left - 4, Math.round(y), 4, 1);
    ctx.fillText(`${t}`, left - 6, y);
  }
  ctx.save();
  ctx.translate(10, top + p.samples / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText("time (s)", 0, 0);
  ctx.restore();
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.fillText(`receivers 0–${(p.receivers - 1) * p.spacing_m} m per shot`, cv.width / 2, top + p.samples + 5);
}

/** Draw a 70 × 70 velocity model on the shared scale; `axes` adds distance/depth axes. */
function drawModel(cv, velocity, vmin, vmax, axes) {
  const nz = velocity.length, nx = velocity[0].length;
  const img = imageOf(nx, nz, (x, y) => (velocity[y][x] - vmin) / (vmax - vmin), "velocity");
  const ctx = cv.getContext("2d");
  if (!axes) {
    cv.width = nx * 2;
    cv.height = nz * 2;
    blit(ctx, img, 0, 0, cv.width, cv.height);
    return;
  }
  const { cell, left, bottom, top, right } = MODEL;
  cv.width = left + nx * cell + right;
  cv.height = top + nz * cell + bottom;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, cv.width, cv.height);
  blit(ctx, img, left, top, nx * cell, nz * cell);
  ctx.fillStyle = "#222";
  ctx.font = "12px system-ui, sans-serif";
  const metres = nx * 10;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of ticks(0, metres, 4)) {
    const x = left + (t / metres) * nx * cell;
    ctx.fillRect(Math.round(x), top + nz * cell, 1, 4);
    ctx.fillText(String(t), x, top + nz * cell + 5);
  }
  ctx.fillText("distance (m)", left + (nx * cell) / 2, top + nz * cell + 19);
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of ticks(0, nz * 10, 4)) {
    const y = top + (t / (nz * 10)) * nz * cell;
    ctx.fillRect(left - 4, Math.round(y), 4, 1);
    ctx.fillText(String(t), left - 6, y);
  }
  ctx.save();
  ctx.translate(10, top + (nz * cell) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText("depth (m)", 0, 0);
  ctx.restore();
}

function velocityRange(models) {
  let lo = Infinity, hi = -Infinity;
  for (const m of models) for (const row of m) for (const v of row) { if (v < lo) lo = v; if (v > hi) hi = v; }
  lo = Math.floor(lo / VELOCITY_STEP) * VELOCITY_STEP;
  hi = Math.ceil(hi / VELOCITY_STEP) * VELOCITY_STEP;
  return hi > lo ? [lo, hi] : [lo, lo + VELOCITY_STEP];
}

function selectMatch(i) {
  const st = gatherState;
  if (!st.results.length) return;
  st.selected = (i + st.results.length) % st.results.length;
  const m = st.results[st.selected];
  drawModel($("selected-canvas"), st.models[st.selected], st.vmin, st.vmax, true);
  $("selected-caption").textContent =
    `match #${m.rank} of ${st.results.length}: score ${m.score.toFixed(3)}, ${m.family}, id ${m.id}`;
  $("selected-rank").textContent = `#${m.rank} / ${st.results.length}`;
  $("selected-png").href = `${m.model_url}?format=png`;
  for (const b of $("matches").children) {
    b.setAttribute("aria-pressed", b.dataset.index === String(st.selected) ? "true" : "false");
  }
  renderDescriptors();
}

function spreadCell(d) {
  if (!d) return "—";
  return `${fmt(d.mean)} ± ${fmt(d.std)}` + (d.calibrated ? " ✓" : "");
}

function renderDescriptors() {
  const body = gatherState.body;
  const inferred = body.inferred_descriptors || {};
  const predicted = body.predicted_descriptors || {};
  const selected = gatherState.results[gatherState.selected];
  const names = [...new Set([...Object.keys(inferred), ...Object.keys(predicted)])];
  const rows = names.map((n) => [
    n.replaceAll("_", " "),
    (inferred[n] || predicted[n]).unit,
    spreadCell(inferred[n]),
    spreadCell(body.predicted_descriptors ? predicted[n] : null),
    selected && n in selected.descriptors ? fmt(selected.descriptors[n]) : "—",
  ]);
  const t = table(["descriptor", "unit", "top-k retrieval (mean ± std)", "descriptor head (mean ± std)",
    selected ? `match #${selected.rank}` : "match"], rows, { id: "descriptors" });
  $("descriptors").replaceWith(t);
}

function renderFamiliarity(f) {
  const box = $("gwarning");
  box.hidden = true;
  if (!f) { $("gfamiliar").textContent = ""; return; }
  $("gfamiliar").textContent = "familiarity " +
    (f.score === null ? "not calibrated" : f.score.toFixed(2)) +
    (f.best_score === null ? "" : `, best cosine ${f.best_score.toFixed(3)}`) +
    (f.calibration ? ` (${f.calibration})` : "");
  if (f.warning) {
    box.textContent = `⚠ ${f.warning}`;
    box.hidden = false;
  }
}

function renderMatches() {
  const st = gatherState;
  const box = $("matches");
  box.replaceChildren();
  st.results.forEach((m, i) => {
    const cv = canvas(140, 140, { class: "thumb", role: "img", "aria-label": `model ${m.id}` });
    drawModel(cv, st.models[i], st.vmin, st.vmax, false);
    box.append(el("button", { type: "button", class: "match", "data-index": String(i), onclick: () => selectMatch(i) },
      cv,
      el("span", { class: "rank", text: `#${m.rank}` }),
      el("span", { class: "score", text: m.score.toFixed(3) }),
      el("span", { class: "family", text: m.family })));
  });
}

async function searchGather(ev) {
  ev.preventDefault();
  const progress = new Progress($("gprogress"));
  const file = $("gfile").files[0];
  showError($("gerror"), "");
  $("gout").hidden = true;
  if (!file) { showError($("gerror"), "Choose a gather file first."); return; }
  const params = new URLSearchParams({ k: $("gk").value });
  if ($("gfamily").value) params.set("family", $("gfamily").value);
  const form = () => { const f = new FormData(); f.append("file", file); return f; };
  $("gsubmit").disabled = true;
  try {
    progress.show("uploading the gather…", 0);
    const upload = (f) => f < 1 ? progress.show(`uploading the gather… ${Math.round(f * 100)} %`, f)
      : progress.show("reading, embedding and searching…");
    const [search, preview] = await Promise.allSettled([
      postForm(`v1/velocity/search?${params}`, form(), upload),
      postForm("v1/page/gather-preview", form()),
    ]);
    if (search.status === "rejected") throw search.reason;
    const body = search.value.body;
    const results = body.results;
    let done = 0;
    const total = results.length + (body.estimated_model ? 1 : 0);
    const step = () => progress.show(`loading models ${++done} / ${total}…`, done / total);
    progress.show(`loading models 0 / ${total}…`, 0);
    const models = await Promise.all(results.map((m) => getJson(`${m.model_url}?format=json`).then((r) => { step(); return r.velocity; })));
    const estimate = body.estimated_model
      ? await getJson(`${body.estimated_model.url}?format=json`).then((r) => { step(); return r.velocity; })
      : null;
    const [vmin, vmax] = velocityRange(estimate ? [...models, estimate] : models);
    Object.assign(gatherState, { results, models, estimate, body, selected: 0, vmin, vmax });
    const q = body.query;
    $("gquery").textContent = `${q.filename}: ${q.format}, ${q.traces} traces, dt ${q.source_dt_ms} ms; ` +
      `bundle ${q.bundle}; ${q.timing.total_ms.toFixed(0)} ms` + (q.notes.length ? `; ${q.notes.join("; ")}` : "");
    renderFamiliarity(body.familiarity);
    $("gout").hidden = false; // first, so the canvases below have their on-screen size
    if (preview.status === "fulfilled") {
      drawGather($("gather-canvas"), preview.value.body);
      $("gather-note").textContent = `as read for the search (1 ms frame shown at ${preview.value.body.dt_ms} ms); ` +
        `amplitudes clipped at ±${preview.value.body.clip.toPrecision(3)} (red positive, blue negative)`;
    } else {
      $("gather-note").textContent = `the gather could not be drawn: ${preview.reason.message}`;
    }
    const cb = $("colourbar");
    drawColourbar(cb, vmin, vmax, "velocity", "velocity (m/s)");
    cb.dataset.vmin = vmin;
    cb.dataset.vmax = vmax;
    cb.setAttribute("aria-label", `colour scale ${vmin}–${vmax} m/s, shared by every model shown`);
    if (estimate) {
      drawModel($("estimate-canvas"), estimate, vmin, vmax, true);
      const e = body.estimated_model;
      $("estimate-caption").textContent = `estimated model: ${e.method} (${e.neighbours} models, temperature ${e.temperature})`;
      $("estimate-npy").href = `${e.url}?format=npy`;
    }
    $("estimate-fig").hidden = !estimate;
    if (results.length) {
      renderMatches();
      selectMatch(0);
    } else {
      $("matches").replaceChildren(el("p", { class: "muted", text: "no library model matched" }));
      renderDescriptors();
    }
    progress.hide();
  } catch (err) {
    progress.hide();
    showError($("gerror"), err);
  } finally {
    $("gsubmit").disabled = false;
  }
}

$("gform").addEventListener("submit", searchGather);
$("gprev").addEventListener("click", () => selectMatch(gatherState.selected - 1));
$("gnext").addEventListener("click", () => selectMatch(gatherState.selected + 1));
