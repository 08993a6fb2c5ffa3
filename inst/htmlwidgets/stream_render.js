// stream_render(): a stream's source and sink, its latest rates and batch
// duration, and their history as an SVG chart. No libraries: the data is a
// few columns (see render_data() in R/stream_view.R).
HTMLWidgets.widget({
  name: "stream_render",
  type: "output",
  factory: function(el, width, height) {
    var SVG = "http://www.w3.org/2000/svg";
    function node(tag, attrs, parent) {
      var n = document.createElementNS(SVG, tag);
      for (var k in attrs) n.setAttribute(k, attrs[k]);
      if (parent) parent.appendChild(n);
      return n;
    }
    function last(values) {
      for (var i = values.length - 1; i >= 0; i--) if (values[i] !== null && !isNaN(values[i])) return values[i];
      return null;
    }
    function fmt(v, unit) {
      return v === null ? "-" : Math.round(v).toLocaleString("en-US") + unit;
    }
    function asArray(v) {
      return Array.isArray(v) ? v : (v === null || v === undefined ? [] : [v]);
    }
    return {
      renderValue: function(x) {
        el.innerHTML = "";
        el.style.fontFamily = "sans-serif";
        var s = x.stats;
        var rpsIn = asArray(s.rps_in), rpsOut = asArray(s.rps_out), took = asArray(s.duration_ms);
        var header = document.createElement("div");
        header.className = "stream-flow";
        header.textContent = x.sources + " \u2192 " + x.sinks;
        header.style.fontWeight = "bold";
        el.appendChild(header);
        var rates = document.createElement("div");
        rates.className = "stream-rates";
        rates.textContent = "rows in/s: " + fmt(last(rpsIn), "") + " \u00b7 rows out/s: " + fmt(last(rpsOut), "") +
          " \u00b7 last batch: " + fmt(last(took), " ms");
        el.appendChild(rates);

        // Drawn on an 800-wide canvas scaled to the element's width.
        var w = 800, h = 300;
        var svg = node("svg", { width: "100%", viewBox: "0 0 " + w + " " + h, "class": "stream-chart" }, el);
        var pad = 40, n = rpsIn.length;
        var top = Math.max.apply(null, rpsIn.concat(rpsOut).concat([1]).filter(function(v) { return v !== null && !isNaN(v); }));
        var xAt = function(i) { return pad + (n <= 1 ? 0 : i * (w - 2 * pad) / (n - 1)); };
        var yAt = function(v) { return h - pad - (v / top) * (h - 2 * pad); };
        node("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, stroke: "#999" }, svg);
        node("line", { x1: pad, y1: pad, x2: pad, y2: h - pad, stroke: "#999" }, svg);
        var label = node("text", { x: 4, y: pad - 8, "font-size": 11, fill: "#555" }, svg);
        label.textContent = Math.round(top).toLocaleString("en-US") + " rows/s";
        [[rpsIn, "#1f77b4", "in"], [rpsOut, "#ff7f0e", "out"]].forEach(function(line, k) {
          var points = line[0].map(function(v, i) { return xAt(i) + "," + yAt(v || 0); }).join(" ");
          node("polyline", { points: points, fill: "none", stroke: line[1], "stroke-width": 2 }, svg);
          var key = node("text", { x: pad + 10, y: pad + 14 * k, "font-size": 12, fill: line[1] }, svg);
          key.textContent = "rows " + line[2] + "/s";
        });
      },
      resize: function(width, height) {}
    };
  }
});
