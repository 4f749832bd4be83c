// 民呼志愿者 (/v): new offers appear without reloading. The server sends an event for every change to a
// ticket of the volunteer's area (/v/live, server-sent events); the page then fetches its panel again
// (/v/panel: server-rendered and escaped, so nothing a resident wrote is ever read as HTML here). An offer
// to this volunteer comes as an `offer` event with its card, rendered and escaped by the server like the
// panel, and is put at the top of the list at once (a grid's open pages all get it at the same moment:
// no panel fetch each). Without EventSource, or while the stream is down, it asks every 20 seconds. A form
// being filled in is not replaced under the volunteer's fingers.
(function () {
  "use strict";
  var panel = document.getElementById("panel");
  var status = document.getElementById("live-status");
  if (!panel) return;
  var busy = false, again = false, lastCount = null;

  function count() {
    var badge = panel.querySelector(".badge");
    return badge ? parseInt(badge.getAttribute("data-count") || "0", 10) : 0;
  }

  function offers() {
    var ids = {};
    panel.querySelectorAll("article.offer").forEach(function (a) { ids[a.id] = true; });
    return ids;
  }

  // An offer that came while the page was open is marked 新 like one that came while it was closed (the
  // server marks those on the refresh that first shows them), and stays so until the page is reloaded.
  var fresh = {};
  function markNew(before) {
    panel.querySelectorAll("article.offer").forEach(function (a) {
      if (a.querySelector(".new") || !before[a.id]) fresh[a.id] = true;
      if (!fresh[a.id] || a.querySelector(".new")) return;
      var mark = document.createElement("span");
      mark.className = "new";
      mark.textContent = "新";
      var heading = a.querySelector("h3");
      heading.insertBefore(document.createTextNode(" "), heading.firstChild);
      heading.insertBefore(mark, heading.firstChild);
    });
  }

  function typing() {
    var active = document.activeElement;
    return active && panel.contains(active) && /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName);
  }

  function refresh() {
    if (busy || typing()) { again = true; return; }
    busy = true;
    fetch(panel.getAttribute("data-panel"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) return;
        var before = seen;
        panel.innerHTML = html;
        markNew(before);
        seen = offers();
        var n = count();
        document.title = (n ? "(" + n + ") " : "") + "工单 · 民呼志愿者";
        if (lastCount !== null && n > lastCount) status.textContent = "来了新工单,请查看。";
        lastCount = n;
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; setTimeout(refresh, 300); }
      });
  }

  lastCount = count();
  var seen = offers();
  markNew(seen);
  // An offer's card from the stream: at the top of the list, counted and marked 新 (the next refresh
  // of the panel shows it the same way).
  function offer(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    var list = panel.querySelector("section[aria-labelledby=h-offers]");
    var id = "offer-" + data.number;
    if (!list || document.getElementById(id)) return;
    var holder = document.createElement("div");
    holder.innerHTML = data.html;  // the server's rendering, escaped as the panel's
    var card = holder.querySelector("article.offer");
    if (!card) return;
    var empty = list.querySelector("p.muted");
    if (empty) empty.remove();
    var heading = list.querySelector("h2");
    list.insertBefore(card, heading ? heading.nextSibling : list.firstChild);
    fresh[id] = true;
    seen[id] = true;
    var badge = panel.querySelector(".badge"), n = count() + 1;
    if (badge) {
      badge.setAttribute("data-count", String(n));
      badge.textContent = String(n);
      badge.setAttribute("aria-label", n + " 张等您接");
    }
    document.title = "(" + n + ") 工单 · 民呼志愿者";
    status.textContent = "来了新工单,请查看。";
    lastCount = n;
  }

  var source = null;
  if (window.EventSource) {
    source = new EventSource(panel.getAttribute("data-live"));
    source.addEventListener("ready", function () { status.textContent = "已连接,新工单会自动出现。"; });
    source.addEventListener("ticket", refresh);
    source.addEventListener("offer", offer);
    source.onerror = function () { status.textContent = "连接中断,正在重新连接…"; };
  }
  // Asking every 20 s is for a page without the stream: 500 open pages asking would cost the server
  // more than all the offers they receive.
  setInterval(function () { if (!source || source.readyState !== 1) refresh(); }, 20000);
  panel.addEventListener("focusout", function () { if (again) { again = false; setTimeout(refresh, 300); } });
})();
