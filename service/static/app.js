// SeisLens page: the bundle line, the family list and the view tabs.
"use strict";

async function loadBundle() {
  let b;
  try { b = await getJson("v1/bundle"); } catch (err) {
    $("bundle").textContent = `no bundle information: ${err.message}`;
    return;
  }
  $("bundle").textContent = `bundle ${b.name}: ${b.index.count} velocity models (${b.index.kind} index)` +
    (b.events ? `, ${b.events.index ? b.events.index.count : 0} library events (${b.events.classes.join(", ")})` : ", no event branch") +
    `; ${b.runtime.execution_provider}`;
  for (const fam of Object.keys(b.index.families)) $("gfamily").append(el("option", { value: fam, text: fam }));
  if (!b.events) {
    $("tab-recording").disabled = true;
    $("tab-recording").title = b.events_unavailable || "this bundle has no event branch";
  }
}

function showView(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    $(`view-${tab.dataset.view}`).hidden = !on;
  }
}

for (const tab of document.querySelectorAll("[role=tab]")) tab.addEventListener("click", () => showView(tab.dataset.view));
loadBundle();
