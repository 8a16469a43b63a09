// The reports page's charts, drawn with Chart.js (served from static/vendor, no CDN). The page works without them:
// every figure is also a link in the tables below each chart, which stay open when the charts cannot be drawn.
// Clicking a bar (or anywhere in its column) opens the conversations it counts.
"use strict";

(function () {
  const source = document.getElementById("report-charts");
  const report = document.getElementById("report");
  if (!source || !report || typeof window.Chart === "undefined") return;
  const Chart = window.Chart;
  const specs = JSON.parse(source.textContent);

  const BLUE = "#1f6feb";
  const BLUE_HOVER = "#1a5fd0";
  // 1 to 5 stars: red to green, 3 neutral.
  const RATING_COLORS = ["#dc2626", "#f97316", "#9ca3af", "#4ade80", "#16a34a"];

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = "#4b5563";
  Chart.defaults.borderColor = "#eef0f3";

  function draw(canvas, spec, options) {
    const horizontal = Boolean(options.horizontal);
    const valueAxis = horizontal ? "x" : "y";
    const categoryAxis = horizontal ? "y" : "x";
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [
          {
            label: spec.name,
            data: spec.values,
            backgroundColor: options.colors || BLUE,
            hoverBackgroundColor: options.colors || BLUE_HOVER,
            borderRadius: 4,
            maxBarThickness: horizontal ? 18 : 44,
          },
        ],
      },
      options: {
        indexAxis: categoryAxis,
        responsive: true,
        maintainAspectRatio: false,
        animation: { duration: 250 },
        // A click anywhere in a bar's column (even a bar of 0) opens its drill-down.
        interaction: { mode: "index", intersect: false, axis: categoryAxis },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => spec.titles[items[0].dataIndex],
              footer: () => "Click for the conversations",
            },
          },
        },
        scales: {
          [valueAxis]: { beginAtZero: true, ticks: { precision: 0 }, grid: { color: "#eef0f3" } },
          [categoryAxis]: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 6 } },
        },
        onClick(event, elements) {
          if (elements.length) window.location.assign(spec.urls[elements[0].index]);
        },
        onHover(event, elements) {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
      },
    });
  }

  const OPTIONS = {
    hours: {},
    weekdays: {},
    ratings: { colors: RATING_COLORS },
    reasons: { horizontal: true },
  };

  report.classList.add("has-charts");
  for (const canvas of report.querySelectorAll("canvas[data-chart]")) {
    const name = canvas.dataset.chart;
    if (!specs[name]) continue;
    try {
      draw(canvas, specs[name], OPTIONS[name] || {});
    } catch (error) {
      console.error("chart", name, error);
      canvas.parentElement.hidden = true;
      continue;
    }
    // Drawn: the figures' links fold away under the chart (still one click, and a keyboard's path, away).
    const details = canvas.closest(".card").querySelector("details.chart__data");
    if (details) details.open = false;
  }
})();
