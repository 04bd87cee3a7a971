// interphase dashboard: the write token, charts, the 3D view and job selection.
// No inline scripts anywhere (the Content-Security-Policy forbids them): data for
// charts and the viewer comes from <script type="application/json"> blocks.
(function () {
  "use strict";

  var TOKEN_KEY = "interphase-dashboard-token";
  var TOKEN_HEADER = "X-Interphase-Token";

  // ---------------------------------------------------------------- token
  function token() {
    try { return window.sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function showTokenState() {
    var locked = document.getElementById("token-locked");
    var unlocked = document.getElementById("token-unlocked");
    if (!locked || !unlocked) { return; }
    var have = token() !== "";
    locked.hidden = have;
    unlocked.hidden = !have;
  }

  function saveToken() {
    var input = document.getElementById("token-input");
    if (!input || !input.value.trim()) { return; }
    window.sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    showTokenState();
  }

  function forgetToken() {
    window.sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  }

  // Writes carry the token as a header (never a cookie: a cross-site form cannot send it).
  document.addEventListener("htmx:configRequest", function (event) {
    var verb = (event.detail.verb || "get").toLowerCase();
    if (verb !== "get" && token()) {
      event.detail.headers[TOKEN_HEADER] = token();
    }
  });

  // One-line refusals (400 bad input, 403 token, 404, 409 changed selection, 413 too
  // large, 500 internal error) are shown.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if ([400, 403, 404, 409, 413, 500, 501].indexOf(status) >= 0) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      if (status === 403) { forgetToken(); }
    }
  });

  // ---------------------------------------------------------------- charts
  function jsonOf(id) {
    var block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : null;
  }

  function drawCharts(root) {
    if (typeof window.Plotly === "undefined") { return; }
    root.querySelectorAll("[data-chart]").forEach(function (element) {
      if (element.dataset.drawn) { return; }
      var figure = jsonOf(element.dataset.chart);
      if (!figure) { return; }
      element.dataset.drawn = "1";
      window.Plotly.react(element, figure.data, figure.layout, {
        displaylogo: false,
        responsive: true,
        modeBarButtonsToRemove: ["lasso2d", "select2d"]
      });
    });
  }

  // ---------------------------------------------------------------- 3D view
  var ELEMENT_RADII = { H: 0.31, Li: 1.28, C: 0.76, N: 0.71, O: 0.66, F: 0.57, P: 1.07, S: 1.05 };

  function xyzText(data) {
    var lines = [String(data.symbols.length), "structure"];
    data.symbols.forEach(function (symbol, k) {
      var p = data.positions[k];
      lines.push(symbol + " " + p[0] + " " + p[1] + " " + p[2]);
    });
    return lines.join("\n");
  }

  function drawCell(viewer, cell) {
    var a = cell[0], b = cell[1], c = cell[2];
    function add(u, v) { return [u[0] + v[0], u[1] + v[1], u[2] + v[2]]; }
    var o = [0, 0, 0];
    var corners = [o, a, b, c, add(a, b), add(a, c), add(b, c), add(add(a, b), c)];
    var edges = [[0, 1], [0, 2], [0, 3], [1, 4], [1, 5], [2, 4], [2, 6], [3, 5], [3, 6], [4, 7], [5, 7], [6, 7]];
    edges.forEach(function (edge) {
      var p = corners[edge[0]], q = corners[edge[1]];
      viewer.addLine({
        start: { x: p[0], y: p[1], z: p[2] }, end: { x: q[0], y: q[1], z: q[2] },
        color: "#7b8794", dashed: false
      });
    });
  }

  function drawViewers(root) {
    if (typeof window.$3Dmol === "undefined") { return; }
    root.querySelectorAll("[data-viewer]").forEach(function (element) {
      if (element.dataset.drawn) { return; }
      var data = jsonOf(element.dataset.viewer);
      if (!data) { return; }
      element.dataset.drawn = "1";
      var viewer = window.$3Dmol.createViewer(element, { backgroundColor: "white" });
      viewer.addModel(xyzText(data), "xyz");
      viewer.setStyle({}, { stick: { radius: 0.12 }, sphere: { scale: 0.28 } });
      // The legend's colours (Jmol's, from the server), not 3Dmol's (Li and O both red).
      var colors = data.colors || {};
      Object.keys(colors).forEach(function (symbol) {
        var color = colors[symbol];
        viewer.setStyle({ elem: symbol }, {
          stick: { radius: 0.12, color: color }, sphere: { scale: 0.28, color: color }
        });
      });
      if (data.cell) { drawCell(viewer, data.cell); }
      viewer.zoomTo();
      viewer.render();
    });
  }

  // ---------------------------------------------------------------- job selection
  // Ticked jobs survive the table's polling refresh: they are kept here and re-ticked.
  var selected = new Set();

  function countSelected() {
    var shown = document.getElementById("selected-count");
    if (shown) { shown.textContent = String(selected.size); }
  }

  function restoreSelection(root) {
    root.querySelectorAll("input[name=ids]").forEach(function (box) {
      box.checked = selected.has(box.value);
    });
    var all = document.getElementById("select-page");
    if (all) {
      var boxes = document.querySelectorAll("#jobs-live input[name=ids]");
      all.checked = boxes.length > 0 && Array.prototype.every.call(boxes, function (b) { return b.checked; });
    }
    countSelected();
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("#jobs-live input[name=ids]")) {
      if (target.checked) { selected.add(target.value); } else { selected.delete(target.value); }
      restoreSelection(document);
    } else if (target.id === "select-page") {
      document.querySelectorAll("#jobs-live input[name=ids]").forEach(function (box) {
        box.checked = target.checked;
        if (target.checked) { selected.add(box.value); } else { selected.delete(box.value); }
      });
      countSelected();
    }
  });

  // A confirmed resubmit or cancel (the server sends the "jobs-changed" event) used up
  // the ticked jobs: untick them, so the count says what the next write would act on.
  document.addEventListener("jobs-changed", function () {
    selected.clear();
    restoreSelection(document);
  });

  // The write form sends the ticked ids (from every refresh of the table).
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("#write-form")) {
      var params = event.detail.parameters;
      if (params && typeof params.delete === "function") {
        params.delete("ids");
        selected.forEach(function (id) { params.append("ids", id); });
      }
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.id === "token-save") { saveToken(); }
    if (target.id === "token-forget") { forgetToken(); }
    if (target.matches && target.matches("[data-dismiss]")) {
      var box = document.getElementById(target.dataset.dismiss);
      if (box) { box.innerHTML = ""; }
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.target.id === "token-input" && event.key === "Enter") {
      event.preventDefault();
      saveToken();
    }
  });

  function refresh(root) {
    drawCharts(root);
    drawViewers(root);
    restoreSelection(root);
  }

  document.addEventListener("htmx:afterSettle", function () { refresh(document); });
  document.addEventListener("DOMContentLoaded", function () {
    showTokenState();
    refresh(document);
  });
})();
