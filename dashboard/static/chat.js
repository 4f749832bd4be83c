// 民呼社区助手 web chat: send a message (POST /chat/messages, the CSRF token in a header), show the
// assistant's answers as they come, buttons that send their payload, photos (POST /chat/photos), and what
// comes later (answers stored while the assistant was away, news of one's requests) pushed on /chat/live
// (server-sent events, `bubbles`). Only while that stream is down does it ask /chat/updates, every 20 s
// (every 3 s without EventSource). Everything is shown as text (textContent), never as HTML.
// The conversation on this page is kept in sessionStorage (this tab only), so a reload keeps it.
(function () {
  "use strict";
  var root = document.getElementById("chat");
  if (!root || !window.fetch) { return; }
  var log = document.getElementById("log");
  var form = document.getElementById("send");
  var input = document.getElementById("text");
  var status = document.getElementById("status");
  var photo = document.getElementById("photo");
  var csrf = root.getAttribute("data-csrf");
  var KEY = "minhu-chat-log";
  var POLL_MS = 3000;  // without EventSource
  var SLOW_POLL_MS = 20000;  // while the stream is down
  var live = false;
  var busy = false;
  var kept = [];

  function save(item) {
    kept.push(item);
    if (kept.length > 200) { kept = kept.slice(-200); }
    try { sessionStorage.setItem(KEY, JSON.stringify(kept)); } catch (e) { /* private mode: not kept */ }
  }

  function show(item, keep) {
    var li = document.createElement("li");
    li.className = "msg " + (item.mine ? "me" : "bot");
    var p = document.createElement("p");
    p.textContent = item.text || "";
    li.appendChild(p);
    if (item.link) {
      var a = document.createElement("a");
      a.href = item.link;
      a.textContent = item.link.indexOf("/chat/") === 0 ? "去看看" : "打开图片";
      if (item.link.indexOf("/") !== 0) { a.rel = "noopener noreferrer"; a.target = "_blank"; }
      li.appendChild(a);
    }
    if (item.buttons && item.buttons.length) {
      var row = document.createElement("div");
      row.className = "choices";
      item.buttons.forEach(function (b) {
        var button = document.createElement("button");
        button.type = "button";
        button.textContent = b.title;
        button.addEventListener("click", function () {
          row.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
          send(b.payload, b.title);
        });
        row.appendChild(button);
      });
      li.appendChild(row);
    }
    log.appendChild(li);
    li.scrollIntoView({ block: "end" });
    if (keep) { save({ text: item.text, mine: !!item.mine, link: item.link, buttons: item.buttons }); }
  }

  function say(text) { status.textContent = text || ""; }

  function answer(response) {
    return response.json().catch(function () {
      return { error: response.status === 403 ? "页面已过期,请刷新页面后再试。" : "抱歉,系统刚才出了点问题,请稍后再试。" };
    }).then(function (body) {
      if (body.error) { say(body.error); }
      (body.bubbles || []).forEach(function (b) { show(b, true); });
      return body;
    });
  }

  function post(url, body, headers) {
    headers = headers || {};
    headers["X-CSRF-Token"] = csrf;
    return fetch(url, { method: "POST", credentials: "same-origin", headers: headers, body: body });
  }

  function send(text, shown) {
    if (busy || !text) { return; }
    busy = true;
    show({ text: shown || text, mine: true }, true);
    say("正在为您处理,请稍候……");
    post("/chat/messages", JSON.stringify({ text: text }), { "Content-Type": "application/json" })
      .then(answer)
      .then(function (body) { if (!body.error) { say(body.stored ? "消息已保存,助手恢复后会回复您。" : ""); } })
      .catch(function () { say("网络好像断了,请检查网络后再发一次。"); })
      .then(function () { busy = false; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { say("请写一写您遇到的问题,内容不能为空。"); return; }
    input.value = "";
    send(text);
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });

  photo.addEventListener("change", function () {
    var file = photo.files && photo.files[0];
    if (!file) { return; }
    if (file.size > 10 * 1024 * 1024) { say("照片太大了(最多 10 MB),请换一张或压缩后再发。"); photo.value = ""; return; }
    var data = new FormData();
    data.append("photo", file);
    say("正在上传照片……");
    post("/chat/photos", data)
      .then(answer)
      .then(function (body) { if (!body.error) { say(""); } })
      .catch(function () { say("网络好像断了,照片没有发出去,请再试一次。"); })
      .then(function () { photo.value = ""; });
  });

  function poll() {
    if (document.visibilityState === "hidden") { return; }
    fetch("/chat/updates", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : { bubbles: [] }; })
      .then(function (body) { (body.bubbles || []).forEach(function (b) { show(b, true); }); })
      .catch(function () { /* offline a moment: the next round asks again */ });
  }

  function listen() {
    var source = new EventSource("/chat/live");
    source.addEventListener("ready", function () { live = true; });
    source.addEventListener("bubbles", function (event) {
      var body;
      try { body = JSON.parse(event.data); } catch (e) { return; }
      (body.bubbles || []).forEach(function (b) { show(b, true); });
    });
    // The browser reconnects by itself; the stream then starts with what waited meanwhile.
    source.addEventListener("error", function () { live = false; });
  }

  try { kept = JSON.parse(sessionStorage.getItem(KEY) || "[]"); } catch (e) { kept = []; }
  kept.forEach(function (item) { show(item, false); });
  if (window.EventSource) {
    listen();  // its first event carries what waited
    setInterval(function () { if (!live) { poll(); } }, SLOW_POLL_MS);
    document.addEventListener("visibilitychange", function () { if (!live) { poll(); } });
  } else {
    poll();
    setInterval(poll, POLL_MS);
    document.addEventListener("visibilitychange", poll);
  }
}());
