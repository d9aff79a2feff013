// Deleting VMs: "Delete selected…" is only enabled while rows are ticked. Loaded as a file (strict CSP).
"use strict";

function updateBulkDeleteButton() {
  const button = document.getElementById("bulk-delete-button");
  if (!button) return;
  const ticked = document.querySelectorAll("#vm-table input[name=vm]:checked").length;
  button.disabled = ticked === 0;
  button.title = ticked ? "" : "Tick the VMs to delete first";
}

// After app.js has handled the same event (select all, ticks kept across a refresh): hence the timeout.
const updateSoon = () => setTimeout(updateBulkDeleteButton, 0);
document.addEventListener("change", updateSoon);
document.addEventListener("htmx:afterSettle", updateSoon);
document.addEventListener("DOMContentLoaded", updateBulkDeleteButton);
