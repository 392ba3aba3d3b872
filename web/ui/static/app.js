// cartograph live updates. The page is complete without this script; it
// keeps it current: one websocket, fragments replaced by id, reconnect with
// backoff and a "reconnecting" banner while the server is away.
(function () {
  "use strict";
  var body = document.body;
  if (!body || body.dataset.live !== "1" || !body.dataset.ws) return;
  var SVGNS = "http://www.w3.org/2000/svg";
  var banner = document.getElementById("conn");
  var delay = 500, everConnected = false;

  function replaceHTML(f) {
    var old = document.getElementById(f.id);
    if (!old) return;
    var t = document.createElement("template");
    t.innerHTML = f.html;
    var el = t.content.firstElementChild;
    if (el) old.replaceWith(el);
  }

  // SVG fragments (a node or an edge group) are parsed in the SVG namespace;
  // parsed as HTML they would not draw.
  function replaceSVG(f) {
    var old = document.getElementById(f.id);
    if (!old) return;
    var doc = new DOMParser().parseFromString('<svg xmlns="' + SVGNS + '">' + f.html + "</svg>", "image/svg+xml");
    var el = doc.documentElement.firstElementChild;
    if (el && !doc.querySelector("parsererror")) old.replaceWith(document.importNode(el, true));
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + body.dataset.ws);
    ws.onopen = function () {
      delay = 500;
      everConnected = true;
      banner.hidden = true;
      body.classList.remove("offline");
    };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      (m.html || []).forEach(replaceHTML);
      (m.svg || []).forEach(replaceSVG);
      body.dataset.updated = String(Date.now());
    };
    ws.onclose = function () {
      if (everConnected) {
        banner.hidden = false;
        body.classList.add("offline");
      }
      setTimeout(connect, delay + Math.random() * delay / 2);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();
