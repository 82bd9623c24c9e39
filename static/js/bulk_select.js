// The users list's bulk selection, enhanced: a select-all box in the table's header (in place of
// the "Select all on this page" button, which reloads the page and works without JavaScript)
// and a count of the ticked users. The actions themselves stay plain form submissions, each to
// its confirmation page.
(function () {
  "use strict";
  var form = document.getElementById("bulk-form");
  var all = document.querySelector("[data-bulk-select-all]");
  if (!form || !all) {
    return;
  }
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-bulk-item]"));
  var count = form.querySelector("[data-bulk-count]");
  var fallback = form.querySelector("[data-bulk-select-all-fallback]");

  function refresh() {
    var ticked = items.filter(function (item) { return item.checked; }).length;
    all.checked = ticked > 0 && ticked === items.length;
    all.indeterminate = ticked > 0 && ticked < items.length;
    if (count) {
      count.textContent = ticked === 0 ? "" : ticked === 1 ? "1 user selected" : ticked + " users selected";
    }
  }

  all.classList.remove("d-none");
  if (fallback) {
    fallback.classList.add("d-none");
  }
  all.addEventListener("change", function () {
    items.forEach(function (item) { item.checked = all.checked; });
    refresh();
  });
  items.forEach(function (item) { item.addEventListener("change", refresh); });
  refresh();
}());
