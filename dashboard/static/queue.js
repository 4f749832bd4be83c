// 工单队列: live updates over /live (server-sent events). On the first page the table's rows are fetched
// again (the server's order, filters and labels) a moment after each event, so a new ticket appears without
// a reload; on a later page a notice offers the refresh instead of moving rows under the reader.
(function () {
  "use strict";
  var table = document.getElementById("queue");
  var notice = document.getElementById("live-status");
  if (!table || !notice || !window.EventSource || !window.fetch) { return; }
  var onFirstPage = !new URLSearchParams(location.search).has("cursor");
  var pending = 0;
  var timer = null;

  function showNotice() {
    notice.hidden = false;
    notice.textContent = "有 " + pending + " 条新工单/更新,点击刷新";
    notice.onclick = function () { location.reload(); };
    notice.style.cursor = "pointer";
  }

  function refreshRows() {
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("refresh " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var body = fresh.querySelector("#queue tbody");
        var total = fresh.querySelector("main p.muted");
        if (body) { table.querySelector("tbody").replaceWith(body); }
        var current = document.querySelector("main p.muted");
        if (total && current) { current.textContent = total.textContent; }
        pending = 0;
        notice.hidden = true;
      })
      .catch(function () { showNotice(); });
  }

  var source = new EventSource("/live");
  source.addEventListener("ticket", function (event) {
    pending += 1;
    var update = JSON.parse(event.data);
    var row = table.querySelector('tr[data-number="' + CSS.escape(update.number) + '"]');
    if (row) { row.classList.add("updated"); }
    if (onFirstPage) {
      clearTimeout(timer);
      timer = setTimeout(refreshRows, 300);
    } else {
      showNotice();
    }
  });
})();
