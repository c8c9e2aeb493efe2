// SeisLens page: helpers shared by the gather and recording views (no dependencies).
"use strict";

const $ = (id) => document.getElementById(id);

/** A new element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/** A number for people: 3 significant decimals for small values, none for large. */
function fmt(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  if (digits !== undefined) return x.toFixed(digits);
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(3);
}

/** base64 text → Int8Array. */
function int8(b64) {
  const bin = atob(b64);
  const out = new Int8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = (bin.charCodeAt(i) << 24) >> 24;
  return out;
}

/** The API's error answer as one readable message. */
function errorText(status, body) {
  if (status === 0) return "The service could not be reached (is it running?).";
  let text = `${status}: ` + (body && body.detail ? body.detail : "the service answered an error");
  if (body && Array.isArray(body.errors) && body.errors.length) {
    const parts = body.errors.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`);
    const extra = parts.filter((p) => !text.includes(p.split(": ").slice(1).join(": ")));
    if (extra.length) text += "\n" + extra.join("\n");
  }
  return text;
}

class ApiError extends Error {
  constructor(status, body) {
    super(errorText(status, body));
    this.status = status;
    this.body = body;
  }
}

/** POST a form with XMLHttpRequest (for upload progress); resolves to the JSON answer,
 *  rejects with ApiError on any non-2xx answer. onUpload(fraction) is called as the
 *  body goes out. */
function postForm(url, form, onUpload) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "text";
    if (onUpload) {
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onUpload(e.loaded / e.total);
      });
    }
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve({ body, xhr });
      else reject(new ApiError(xhr.status, body));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, null)));
    xhr.send(form);
  });
}

/** GET JSON; rejects with ApiError on any non-2xx answer. */
async function getJson(url) {
  let r;
  try { r = await fetch(url); } catch (_) { throw new ApiError(0, null); }
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

/** A request's progress line: a <progress> bar and a status text. */
class Progress {
  constructor(root) {
    this.root = root;
    this.bar = root.querySelector("progress");
    this.text = root.querySelector(".status");
  }
  show(text, fraction) {
    this.root.hidden = false;
    this.text.textContent = text;
    if (fraction === undefined || fraction === null) this.bar.removeAttribute("value");
    else this.bar.value = Math.max(0, Math.min(1, fraction));
  }
  hide() { this.root.hidden = true; }
}

/** Show an error (string or Error) in a view's error box. */
function showError(box, err) {
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = !box.textContent;
}

/** A canvas of a given drawing size (CSS scales it to its box). */
function canvas(width, height, attrs = {}) {
  const c = el("canvas", attrs);
  c.width = width;
  c.height = height;
  return c;
}

/** A table from a header and rows of cells (strings or nodes). */
function table(header, rows, attrs = {}) {
  const t = el("table", attrs);
  const head = t.createTHead().insertRow();
  for (const h of header) head.append(el("th", { text: h }));
  const tb = t.createTBody();
  for (const r of rows) {
    const row = tb.insertRow();
    for (const c of r) {
      const td = row.insertCell();
      if (c instanceof Node) td.append(c); else td.textContent = c;
    }
  }
  return t;
}
