// Draws the usage dashboard's charts from the JSON the page embeds (#usage-chart-data).
(function () {
  "use strict";
  var source = document.getElementById("usage-chart-data");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var days = document.getElementById("chart-days");
  if (days) {
    new Chart(days, {
      type: "bar",
      data: {
        labels: data.days,
        datasets: [
          { type: "bar", label: "Requests", data: data.requests, yAxisID: "requests" },
          { type: "bar", label: "Refused by a limit", data: data.rate_limited, yAxisID: "requests" },
          { type: "line", label: "Tokens", data: data.tokens, yAxisID: "tokens", tension: 0.2 }
        ]
      },
      options: {
        responsive: true,
        interaction: { mode: "index", intersect: false },
        scales: {
          requests: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "requests" } },
          tokens: { type: "linear", position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                    title: { display: true, text: "tokens" } }
        }
      }
    });
  }
  var features = document.getElementById("chart-features");
  if (features) {
    new Chart(features, {
      type: "doughnut",
      data: { labels: data.features, datasets: [{ label: "Tokens", data: data.feature_tokens }] },
      options: { responsive: true }
    });
  }
})();
