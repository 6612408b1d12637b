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
      var select = form.querySelector("[name=reason]");
      var other = form.querySelector("[name=reason_other]");
      if ((!select || !select.value) && other && !other.value) {
        var answer = window.prompt("Reason for rejecting (e.g. wrong product, artifacts, off-brand):", "Off-brand style");
        if (answer === null || !answer.trim()) { return; }
        other.value = answer.trim();
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

  // htmx:load fires on the tile that replaced a decided one: move on to the next undecided tile.
  document.addEventListener("htmx:load", function (event) {
    var swapped = event.target;
    if (!swapped || !swapped.matches || !swapped.matches("[data-review-tile]") || current()) { return; }
    var all = tiles();
    var start = all.indexOf(swapped);
    var rest = all.slice(start + 1).concat(all.slice(0, start));
    select(rest.filter(function (t) { return !t.classList.contains("decided"); })[0] || null);
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-review-grid]")) { move(0); }
  });
})();
