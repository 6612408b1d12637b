/* Easel Studio behaviour that htmx does not cover: confirmations and review keyboard shortcuts.
   j/k move between images, a approves, r rejects (asks for a reason), x toggles selection. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  function tiles() { return Array.prototype.slice.call(document.querySelectorAll("[data-review-tile]")); }
  function current() { return document.querySelector("[data-review-tile].current"); }

  function select(tile) {
    var old = current();
    if (old) { old.classList.remove("current"); }
    if (tile) {
      tile.classList.add("current");
      tile.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    var all = tiles().filter(function (t) { return !t.classList.contains("decided"); });
    if (!all.length) { return; }
    var index = all.indexOf(current());
    var next = index < 0 ? 0 : Math.min(all.length - 1, Math.max(0, index + step));
    select(all[next]);
  }

  function decide(tile, verdict) {
    var form = tile && tile.querySelector("form[data-decision='" + verdict + "']");
    if (!form) { return; }
    if (verdict === "reject") {
      var reason = form.querySelector("[name=reason]");
      if (reason && !reason.value) {
        var answer = window.prompt("Reason for rejecting (e.g. wrong product, artifacts, off-brand):", "off-brand");
        if (answer === null) { return; }
        reason.value = answer;
      }
    }
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }

  document.addEventListener("keydown", function (event) {
    if (!document.querySelector("[data-review-grid]")) { return; }
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tile = current();
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "a": decide(tile, "approve"); break;
      case "r": decide(tile, "reject"); break;
      case "x":
        if (tile) { var box = tile.querySelector("input[type=checkbox]"); if (box) { box.checked = !box.checked; } }
        break;
      default: return;
    }
    event.preventDefault();
  });

  // After htmx replaces a decided tile, move the cursor to the next undecided one.
  document.addEventListener("htmx:afterSwap", function (event) {
    var swapped = event.detail && event.detail.elt;
    if (swapped && swapped.matches && swapped.matches("[data-review-tile].decided")) {
      var all = tiles();
      var start = all.indexOf(swapped);
      var next = all.slice(start + 1).concat(all.slice(0, start)).filter(function (t) { return !t.classList.contains("decided"); })[0];
      swapped.classList.remove("current");
      select(next || null);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-review-grid]")) { move(0); }
  });
})();
