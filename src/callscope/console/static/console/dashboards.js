// Dashboards: draws the charts of a page with plotly.js (served from the installed plotly
// package). Data comes from the page's <script id="dashboard-data" type="application/json">.
"use strict";
(function () {
  const FONT = { family: "'Noto Sans JP', 'IPAexGothic', 'Hiragino Sans', 'Meiryo', sans-serif", size: 12 };
  const BLUE = "#1f5fa8";
  const LAYOUT = { font: FONT, margin: { l: 60, r: 20, t: 10, b: 50 }, paper_bgcolor: "rgba(0,0,0,0)",
                   plot_bgcolor: "rgba(0,0,0,0)", legend: { orientation: "h" } };
  const CONFIG = { displaylogo: false, responsive: true, locale: "ja" };

  function layout(extra) { return Object.assign({}, LAYOUT, extra || {}); }

  const DRAW = {
    trend(el, d) {
      const traces = d.series.map(([name, y]) => ({ x: d.x, y: y, name: name, type: "scatter", mode: "lines" }));
      const shapes = [], annotations = [];
      if (d.marker) {
        shapes.push({ type: "line", x0: d.marker, x1: d.marker, yref: "paper", y0: 0, y1: 1,
                      line: { color: "#c0392b", width: 2, dash: "dash" } });
        annotations.push({ x: d.marker, yref: "paper", y: 1, text: d.marker_label, showarrow: false,
                           font: { color: "#c0392b" }, xanchor: "left" });
      }
      Plotly.newPlot(el, traces, layout({ shapes: shapes, annotations: annotations }), CONFIG);
    },
    heatmap(el, d) {
      Plotly.newPlot(el, [{ z: d.z, x: d.x, y: d.y, type: "heatmap", colorscale: "Blues", reversescale: true, hoverongaps: false }],
                     layout({ yaxis: { autorange: "reversed" } }), CONFIG);
    },
    mix(el, d) {
      Plotly.newPlot(el, [{ labels: d.labels, values: d.values, type: "pie", hole: 0.45 }], layout(), CONFIG);
    },
    peak(el, d) {
      Plotly.newPlot(el, [{ x: d.x, y: d.y, type: "scatter", mode: "lines", line: { color: BLUE } }], layout(), CONFIG);
    },
    bar(el, d) {
      Plotly.newPlot(el, [{ x: d.x, y: d.y, type: "bar", orientation: "h", marker: { color: BLUE } }],
                     layout({ margin: { l: 220, r: 20, t: 10, b: 40 } }), CONFIG);
    },
    histogram(el, d) {
      Plotly.newPlot(el, [{ x: d.x, y: d.y, type: "bar", marker: { color: BLUE } }],
                     layout({ xaxis: { type: "category", title: { text: "秒" } } }), CONFIG);
    },
    matrix(el, d) {
      Plotly.newPlot(el, [{ z: d.z, x: d.x, y: d.y, type: "heatmap", colorscale: "YlOrRd", reversescale: true, customdata: d.links,
                            hoverongaps: false, hovertemplate: "%{y} → %{x}: %{z}<extra></extra>" }],
                     layout({ margin: { l: 220, r: 20, t: 10, b: 160 }, yaxis: { autorange: "reversed" } }), CONFIG);
      el.on("plotly_click", (event) => {
        const url = event.points && event.points[0] && event.points[0].customdata;
        if (url) { window.location.href = url; }
      });
    },
  };

  function draw() {
    const source = document.getElementById("dashboard-data");
    if (!source || typeof Plotly === "undefined") { return; }
    const data = JSON.parse(source.textContent);
    document.querySelectorAll("[data-chart]").forEach((el) => {
      const name = el.dataset.chart;
      const kind = el.dataset.kind || name;
      if (data[name] && DRAW[kind]) { DRAW[kind](el, data[name]); }
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
