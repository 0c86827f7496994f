// Sorting and filtering for the report's tables. The page is complete
// without this script: it only adds a filter box above each table and
// makes the column headers buttons that sort. The state is kept in the
// location's fragment (#images.sort=critical&images.dir=desc&images.q=nginx)
// so that a sorted, filtered view can be bookmarked or shared.
(function () {
  "use strict";

  var state = new URLSearchParams(location.hash.indexOf("=") > 0 ? location.hash.slice(1) : "");

  function save() {
    var s = state.toString();
    history.replaceState(null, "", s ? "#" + s : location.pathname + location.search);
  }

  function cellKey(row, col) {
    var cell = row.cells[col];
    if (!cell) {
      return "";
    }
    var v = cell.getAttribute("data-v");
    if (v !== null && v !== "" && !isNaN(Number(v))) {
      return Number(v);
    }
    return cell.textContent.trim().toLowerCase();
  }

  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") {
      return a - b;
    }
    if (typeof a === "number") {
      return -1;
    }
    if (typeof b === "number") {
      return 1;
    }
    return a.localeCompare(b, undefined, { numeric: true });
  }

  function enhance(table) {
    var id = table.id;
    var body = table.tBodies[0];
    var heads = table.tHead.rows[0].cells;
    var rows = Array.prototype.slice.call(body.rows);
    var status = document.createElement("span");
    status.className = "filter-status";
    status.setAttribute("aria-live", "polite");

    function sortBy(key, dir) {
      var col = -1;
      for (var i = 0; i < heads.length; i++) {
        var th = heads[i];
        if (th.getAttribute("data-key") === key) {
          col = i;
          th.setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
        } else {
          th.removeAttribute("aria-sort");
        }
      }
      if (col < 0) {
        return;
      }
      var sign = dir === "desc" ? -1 : 1;
      var keyed = Array.prototype.map.call(body.rows, function (row, index) {
        return { row: row, key: cellKey(row, col), index: index };
      });
      keyed.sort(function (a, b) {
        return sign * compare(a.key, b.key) || a.index - b.index;
      });
      var frag = document.createDocumentFragment();
      keyed.forEach(function (k) {
        frag.appendChild(k.row);
      });
      body.appendChild(frag);
    }

    function filter(q) {
      var words = q.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row) {
        var text = row.textContent.toLowerCase();
        var ok = words.every(function (w) {
          return text.indexOf(w) >= 0;
        });
        row.hidden = !ok;
        if (ok) {
          shown++;
        }
      });
      status.textContent = words.length ? shown + " of " + rows.length + " rows" : "";
    }

    Array.prototype.forEach.call(heads, function (th) {
      var key = th.getAttribute("data-key");
      if (!key) {
        return;
      }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) {
        button.appendChild(th.firstChild);
      }
      th.appendChild(button);
      button.addEventListener("click", function () {
        var dir = state.get(id + ".sort") === key && state.get(id + ".dir") !== "desc" ? "desc" : "asc";
        state.set(id + ".sort", key);
        state.set(id + ".dir", dir);
        save();
        sortBy(key, dir);
      });
    });

    var label = document.createElement("label");
    label.className = "filter";
    label.appendChild(document.createTextNode("Filter "));
    var input = document.createElement("input");
    input.type = "search";
    input.setAttribute("aria-controls", id);
    label.appendChild(input);
    var controls = document.createElement("div");
    controls.className = "controls";
    controls.appendChild(label);
    controls.appendChild(status);
    var wrap = table.parentNode;
    wrap.parentNode.insertBefore(controls, wrap);
    input.addEventListener("input", function () {
      if (input.value) {
        state.set(id + ".q", input.value);
      } else {
        state.delete(id + ".q");
      }
      save();
      filter(input.value);
    });

    if (state.get(id + ".sort")) {
      sortBy(state.get(id + ".sort"), state.get(id + ".dir"));
    }
    if (state.get(id + ".q")) {
      input.value = state.get(id + ".q");
      filter(input.value);
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.data"), enhance);
  document.documentElement.setAttribute("data-ready", "true");
})();
