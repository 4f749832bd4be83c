/* 数据 page: draws the charts from the JSON block #figures-data with Apache ECharts (vendored, canvas
   renderer). Each chart element gets data-ready="1" once drawn and data-points with how many values it
   shows, so the browser tests can check the charts hold data. The tables beside them are the text
   alternative. */
(function () {
  "use strict";
  var source = document.getElementById("figures-data");
  if (!source || !window.echarts) { return; }
  var data = JSON.parse(source.textContent);
  var charts = [];
  var colours = ["#0b5cad", "#1a7f37", "#b35900", "#6e40c9"];

  function draw(id, option, points) {
    var node = document.getElementById(id);
    if (!node) { return; }
    var chart = window.echarts.init(node, null, { renderer: "canvas" });
    option.animation = false;
    option.color = colours;
    option.tooltip = option.tooltip || { trigger: "axis" };
    option.grid = { left: 48, right: 16, top: 40, bottom: 48, containLabel: true };
    chart.setOption(option);
    node.setAttribute("data-points", String(points));
    node.setAttribute("data-ready", "1");
    charts.push(chart);
  }

  // Every label shown; tilted when the chart is narrow (a phone) so they do not overlap.
  function labels(id) {
    var node = document.getElementById(id);
    var narrow = node && node.clientWidth < 480;
    return { interval: 0, rotate: narrow ? 35 : 0, fontSize: 11 };
  }

  function count(values) {
    return values.filter(function (v) { return v !== null; }).length;
  }

  var s = data.series;
  draw("chart-volume", {
    legend: { top: 0 },
    xAxis: { type: "category", data: s.labels, axisLabel: labels("chart-volume") },
    yAxis: { type: "value", minInterval: 1, name: "件" },
    series: [
      { name: "工单数", type: "bar", data: s.total },
      { name: "已解决", type: "bar", data: s.resolved }
    ]
  }, s.total.length);

  draw("chart-rates", {
    legend: { top: 0 },
    tooltip: { trigger: "axis", valueFormatter: function (v) { return v === null || v === undefined ? "—" : v + "%"; } },
    xAxis: { type: "category", data: s.labels, axisLabel: labels("chart-rates") },
    yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
    series: [
      { name: "响应率", type: "line", data: s.response_rate, connectNulls: false },
      { name: "解决率", type: "line", data: s.resolution_rate, connectNulls: false },
      { name: "满意率", type: "line", data: s.satisfaction_rate, connectNulls: false }
    ]
  }, count(s.response_rate) + count(s.resolution_rate) + count(s.satisfaction_rate));

  var b = data.buckets;
  draw("chart-times", {
    legend: { top: 0 },
    xAxis: { type: "category", data: b.labels, axisLabel: labels("chart-times") },
    yAxis: { type: "value", minInterval: 1, name: "件" },
    series: [
      { name: "首次响应", type: "bar", data: b.first_response },
      { name: "办结", type: "bar", data: b.resolution }
    ]
  }, b.labels.length);

  var g = data.breakdown;
  draw("chart-breakdown", {
    legend: { top: 0 },
    xAxis: { type: "category", data: g.labels, axisLabel: g.labels.length > 6 ? { interval: 0, rotate: 30, fontSize: 11 } : labels("chart-breakdown") },
    yAxis: { type: "value", minInterval: 1, name: "件" },
    series: [
      { name: "工单数", type: "bar", data: g.total },
      { name: "已解决", type: "bar", data: g.resolved }
    ]
  }, g.labels.length);

  window.addEventListener("resize", function () {
    charts.forEach(function (chart) { chart.resize(); });
  });
})();
