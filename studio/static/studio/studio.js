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

/* The generate form's layout editor: drag on the canvas to draw a box (relative coordinates),
   name it in the list; the hidden "layout" field holds [{phrase, box: [x0, y0, x1, y1]}]. And its
   mask editor: paint white over the source image; the drawing is sent as "mask_drawn" (a PNG). */
(function () {
  "use strict";

  function round(v) { return Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000; }

  function point(canvas, event) {
    var rect = canvas.getBoundingClientRect();
    return { x: (event.clientX - rect.left) / rect.width, y: (event.clientY - rect.top) / rect.height };
  }

  function layoutEditor(root) {
    var canvas = root.querySelector("[data-layout-canvas]");
    var list = root.querySelector("[data-layout-list]");
    var field = root.querySelector("input[name=layout]");
    var boxes = [];
    try { boxes = JSON.parse(field.value || "[]"); } catch (e) { boxes = []; }
    if (!Array.isArray(boxes)) { boxes = []; }
    boxes = boxes.filter(function (item) {
      return item && typeof item.phrase === "string" && Array.isArray(item.box) && item.box.length === 4;
    });
    var start = null, preview = null;

    function save() { field.value = boxes.length ? JSON.stringify(boxes) : ""; }

    function draw() {
      var ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      var all = preview ? boxes.concat([{ phrase: "", box: preview }]) : boxes;
      all.forEach(function (item, i) {
        var b = item.box, w = canvas.width, h = canvas.height;
        ctx.strokeStyle = "#2563eb"; ctx.lineWidth = 2;
        ctx.strokeRect(b[0] * w, b[1] * h, (b[2] - b[0]) * w, (b[3] - b[1]) * h);
        ctx.fillStyle = "#2563eb"; ctx.font = "12px sans-serif";
        ctx.fillText(String(i + 1) + (item.phrase ? " " + item.phrase : ""), b[0] * w + 4, b[1] * h + 14);
      });
    }

    function render() {
      list.innerHTML = "";
      boxes.forEach(function (item, i) {
        var li = document.createElement("li");
        var input = document.createElement("input");
        input.type = "text"; input.value = item.phrase; input.maxLength = 80;
        input.setAttribute("aria-label", "What goes in box " + (i + 1));
        input.setAttribute("data-layout-phrase", String(i + 1));
        input.addEventListener("input", function () { item.phrase = input.value; save(); draw(); });
        var remove = document.createElement("button");
        remove.type = "button"; remove.textContent = "Remove";
        remove.addEventListener("click", function () { boxes.splice(i, 1); save(); render(); });
        li.appendChild(input); li.appendChild(document.createTextNode(" [" + item.box.join(", ") + "] ")); li.appendChild(remove);
        list.appendChild(li);
      });
      draw();
    }

    canvas.addEventListener("pointerdown", function (event) {
      start = point(canvas, event); canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!start) { return; }
      var p = point(canvas, event);
      preview = [round(Math.min(start.x, p.x)), round(Math.min(start.y, p.y)), round(Math.max(start.x, p.x)), round(Math.max(start.y, p.y))];
      draw();
    });
    canvas.addEventListener("pointerup", function (event) {
      if (!start) { return; }
      var p = point(canvas, event);
      var box = [round(Math.min(start.x, p.x)), round(Math.min(start.y, p.y)), round(Math.max(start.x, p.x)), round(Math.max(start.y, p.y))];
      start = null; preview = null;
      if (box[2] - box[0] >= 0.02 && box[3] - box[1] >= 0.02) {
        var prompt = document.querySelector("[name=prompt]");
        var guess = prompt ? prompt.value.split(" on ")[0].replace(/^an? /, "").trim().slice(0, 80) : "";
        boxes.push({ phrase: guess || "product", box: box });
        save();
      }
      render();
    });
    root.querySelector("[data-layout-clear]").addEventListener("click", function () { boxes = []; save(); render(); });
    render();
  }

  function maskEditor(root, form) {
    var canvas = root.querySelector("[data-mask-canvas]");
    var ctx = canvas.getContext("2d");
    var painted = false, down = false;
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height);

    function paint(event) {
      var p = point(canvas, event);
      ctx.fillStyle = "#fff"; ctx.beginPath();
      ctx.arc(p.x * canvas.width, p.y * canvas.height, canvas.width / 16, 0, 2 * Math.PI); ctx.fill();
      painted = true;
    }
    canvas.addEventListener("pointerdown", function (event) { down = true; canvas.setPointerCapture(event.pointerId); paint(event); });
    canvas.addEventListener("pointermove", function (event) { if (down) { paint(event); } });
    canvas.addEventListener("pointerup", function () { down = false; });
    // A file chosen as the source shows under the canvas, to paint the mask over.
    var file = form.querySelector("input[name=source_file]");
    if (file) {
      file.addEventListener("change", function () {
        if (!file.files || !file.files[0]) { return; }
        root.querySelector("[data-mask-source]").src = URL.createObjectURL(file.files[0]);
        root.hidden = false;
      });
    }
    root.querySelector("[data-mask-clear]").addEventListener("click", function () {
      ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); painted = false;
    });
    form.addEventListener("submit", function () {
      form.querySelector("input[name=mask_drawn]").value = painted ? canvas.toDataURL("image/png") : "";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("generate-form");
    if (!form) { return; }
    var layout = form.querySelector("[data-layout-editor]");
    if (layout) { layoutEditor(layout); }
    var mask = form.querySelector("[data-mask-editor]");
    if (mask) { maskEditor(mask, form); }
  });
})();
