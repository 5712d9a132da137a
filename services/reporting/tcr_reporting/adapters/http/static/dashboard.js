/* tcr reporting dashboard: draws every .chart from its JSON spec with the vendored ECharts, and keeps the
   page current without a reload: it polls /dashboard/version and, when the projection has moved, refetches
   the page and swaps the [data-refresh] parts (tables, chart data, headline) in place. */
(function () {
  "use strict";
  var POLL_MS = 1500;
  var palette = ["#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000"];

  function fmt(v) {
    return Number(v).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function option(spec) {
    var tooltipFmt = function (params) {
      var list = Array.isArray(params) ? params : [params];
      var head = list.length ? (list[0].name || list[0].axisValueLabel || "") : "";
      return head + "<br>" + list.map(function (p) {
        return p.marker + p.seriesName + ": " + fmt(Array.isArray(p.value) ? p.value[1] : p.value) + " 元";
      }).join("<br>");
    };
    if (spec.type === "pie") {
      var s = spec.series[0];
      var total = s.data.reduce(function (sum, v) { return sum + Math.abs(Number(v)); }, 0);
      if (total === 0) {
        return { animation: false, series: [],
                 title: { text: "暂无数据  No figures yet", left: "center", top: "middle",
                          textStyle: { color: "#6b7785", fontSize: 14, fontWeight: "normal" } } };
      }
      return {
        color: palette, animation: false,
        tooltip: { trigger: "item", formatter: function (p) { return p.marker + p.name + ": " + fmt(p.value) + " 元 (" + p.percent + "%)"; } },
        legend: { bottom: 0, type: "scroll" },
        series: [{ name: s.name, type: "pie", radius: ["35%", "65%"], center: ["50%", "45%"],
                   data: spec.x.map(function (label, i) { return { name: label, value: Number(s.data[i]) }; })
                               .filter(function (d) { return d.value !== 0; }),
                   label: { formatter: "{d}%" } }]
      };
    }
    var categoryAxis = { type: "category", data: spec.x, axisLabel: { interval: 0, fontSize: 11,
      formatter: function (v) { return spec.horizontal ? v : String(v).replace(" ", "\n"); } } };
    var valueAxis = { type: "value", name: spec.unit || "", axisLabel: { formatter: function (v) { return v >= 1e8 ? (v / 1e8) + "亿" : v >= 1e4 ? (v / 1e4) + "万" : v; } } };
    if (spec.horizontal) { categoryAxis.inverse = true; }
    return {
      color: palette, animation: false,
      tooltip: { trigger: "axis", formatter: tooltipFmt },
      legend: { top: 0 },
      grid: { left: spec.horizontal ? 120 : 70, right: 30, top: 40, bottom: 40, containLabel: false },
      xAxis: spec.horizontal ? valueAxis : categoryAxis,
      yAxis: spec.horizontal ? categoryAxis : valueAxis,
      series: spec.series.map(function (s) {
        return { name: s.name, type: spec.type, data: s.data.map(Number), smooth: spec.type === "line",
                 barMaxWidth: 28, symbolSize: 7 };
      })
    };
  }

  function drawAll() {
    if (!window.echarts) { return; }
    document.querySelectorAll(".chart[data-spec]").forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-spec"));
      // a hidden chart (the what-if page before a run) has no size yet: drawn when shown
      if (!source || !el.clientWidth) { return; }
      var spec = JSON.parse(source.textContent);
      var chart = window.echarts.getInstanceByDom(el) || window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(option(spec), true);
      el.setAttribute("data-drawn", String(Number(el.getAttribute("data-drawn") || "0") + 1));
    });
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll("[data-refresh][id]").forEach(function (fresh) {
      var old = document.getElementById(fresh.id);
      if (old) { old.innerHTML = fresh.innerHTML; }
    });
    drawAll();
  }

  var current = document.body.getAttribute("data-version") || "";
  var versionUrl = document.body.getAttribute("data-version-url");

  function poll() {
    fetch(versionUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || body.version === current) { return null; }
        var next = body.version;
        return fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (html) { swap(html); current = next; document.body.setAttribute("data-version", next); }
          });
      })
      .catch(function () { /* the service is restarting: try again at the next tick */ })
      .then(function () { window.setTimeout(poll, POLL_MS); });
  }

  window.addEventListener("resize", function () {
    document.querySelectorAll(".chart[data-spec]").forEach(function (el) {
      var chart = window.echarts && window.echarts.getInstanceByDom(el);
      if (chart) { chart.resize(); }
    });
  });
  window.tcrDashboard = { draw: drawAll };  // pages that build their charts later (what-if) redraw with it
  drawAll();
  if (versionUrl && document.querySelector(".chart[data-spec]")) { window.setTimeout(poll, POLL_MS); }
})();
