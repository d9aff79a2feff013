// Fluence Portal: small behaviours htmx does not cover. Loaded as a file: the CSP forbids inline scripts.
"use strict";

// "updated 12 s ago", per account: count up from the server's data time between refreshes, as
// vms/display.py format_data_age words it ("just now" only under 5 s).
function tickUpdatedAgo() {
  const now = Date.now() / 1000;
  document.querySelectorAll("[data-updated-at]").forEach((element) => {
    const at = Number(element.dataset.updatedAt);
    const target = element.querySelector(".updated-ago");
    if (!at || !target) return;
    const seconds = Math.max(0, Math.floor(now - at));
    if (seconds < 5) target.textContent = "just now";
    else if (seconds < 60) target.textContent = `${seconds} s ago`;
    else if (seconds < 3600) target.textContent = `${Math.floor(seconds / 60)} min ago`;
    else if (seconds < 86400) target.textContent = `${Math.floor(seconds / 3600)} h ago`;
    else target.textContent = `${Math.floor(seconds / 86400)} d ago`;
  });
}
setInterval(tickUpdatedAgo, 1000);

// Copy buttons: copy the text of the element named by data-copy-target.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyTarget);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

// A failed htmx request must not fail silently: say so above the table or section that asked.
document.addEventListener("htmx:responseError", (event) => {
  showRequestProblem(event.detail.elt, `The portal answered with an error (HTTP ${event.detail.xhr.status}). The data shown may be out of date.`);
});
document.addEventListener("htmx:sendError", (event) => {
  showRequestProblem(event.detail.elt, "The portal could not be reached. The data shown may be out of date; it will retry.");
});
// Gone once a request succeeds again, whether it swapped new content or (a 204: nothing changed) none.
const clearRequestProblems = () => {
  document.querySelectorAll(".request-problem").forEach((element) => element.remove());
};
document.addEventListener("htmx:afterSwap", clearRequestProblems);
document.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail.successful) clearRequestProblems();
});

function showRequestProblem(element, text) {
  const anchor = element.closest("section, table, form") || document.querySelector("main");
  if (!anchor || !anchor.parentNode) return;
  let notice = anchor.parentNode.querySelector(":scope > .request-problem");
  if (!notice) {
    notice = document.createElement("p");
    notice.className = "notice notice-error request-problem";
    notice.setAttribute("role", "alert");
    anchor.parentNode.insertBefore(notice, anchor);
  }
  notice.textContent = text;
}

// The confirmation dialog: htmx fills #modal-content, this opens and closes the <dialog> around it.
const modal = () => document.getElementById("modal");
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target.id === "modal-content" && !modal().open) {
    modal().showModal();
    const input = modal().querySelector("input[autofocus]");
    if (input) input.focus();
  }
});
document.addEventListener("click", (event) => {
  const closer = event.target.closest("[data-close-modal]");
  if (closer && modal() && modal().open) {
    event.preventDefault();
    modal().close();
  }
});

// "Select all" ticks every row checkbox of the current page.
document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-select-all]");
  if (!all) return;
  document.querySelectorAll(all.dataset.selectAll).forEach((box) => { box.checked = all.checked; rememberTick(box); });
});

// Row "Delete" links (the link in a row's last cell) open the confirmation dialog through htmx. They stay
// plain links without JavaScript, and carry no class or hx-* attribute so that each row of the table stays
// small (vms/vm_table.py render_rows).
document.addEventListener("click", (event) => {
  const link = event.target.closest("#vm-table tbody td:last-child > a[href$='/delete/']");
  if (!link || !window.htmx || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  htmx.ajax("GET", link.getAttribute("href"), { target: "#modal-content" });  // the default swap: its content
});

// The table is refreshed in place: keep the rows the person ticked ticked across refreshes. The ticks are
// kept as they are made, not read just before a swap: a tick landing between a refresh's answer and its
// swap would otherwise be lost with the old table.
const tickedRows = new Set();
function rememberTick(box) {
  if (box.checked) tickedRows.add(box.value); else tickedRows.delete(box.value);
}
document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("#vm-table input[name=vm]")) rememberTick(event.target);
});
document.addEventListener("htmx:afterSettle", () => {
  if (!tickedRows.size) return;
  document.querySelectorAll("#vm-table input[name=vm]").forEach((box) => { if (tickedRows.has(box.value)) box.checked = true; });
});
