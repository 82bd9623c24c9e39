// Draws an anomaly case's evidence from the JSON the page embeds (#case-evidence-data):
// the user's calls in this hour of the week, earlier weeks and now, against its peers' usual range.
(function () {
  "use strict";
  var source = document.getElementById("case-evidence-data");
  var canvas = document.getElementById("case-evidence-chart");
  if (!source || !canvas || typeof Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var datasets = [{ type: "bar", label: "This user's calls", data: data.calls }];
  if (data.peer_low !== null && data.peer_high !== null) {
    datasets.push({ type: "line", label: "Peers, usual low", data: data.labels.map(function () { return data.peer_low; }),
                    borderDash: [4, 4], pointRadius: 0 });
    datasets.push({ type: "line", label: "Peers, usual high", data: data.labels.map(function () { return data.peer_high; }),
                    borderDash: [4, 4], pointRadius: 0 });
  }
  new Chart(canvas, {
    data: { labels: data.labels, datasets: datasets },
    options: { responsive: true, scales: { y: { beginAtZero: true, title: { display: true, text: "calls" } } } }
  });
})();
