// cartograph page script. The page is complete without it; it keeps the
// map's text legible at the scale the map is drawn at, and keeps live
// pages current: one websocket, fragments replaced by id, reconnect with
// backoff and a "reconnecting" banner while the server is away.
(function () {
  "use strict";
  var body = document.body;
  if (!body) return;

  // LEGIBLE is the least on-screen font size (px) of any text drawn on
  // the map; the CSS enlarges text by --s, --z and --zb to keep to it.
  var LEGIBLE = 11;
  // Font sizes of the map's text in SVG units (style.css).
  var EDGE_LABEL = 11, BADGE = 12, KIND = 10, NAME = 12.5;
  // The kind tag is dropped once enlarging it would crowd the node's name.
  var KIND_MAX = 15;

  // fitText shortens el's text (the full text in data-full, or its first
  // text) until it is at most w wide, cutting its middle (names differ
  // least there) or its end; it hides el when fewer than four characters
  // would be left.
  function fitText(el, w, middle) {
    var full = el.dataset.full;
    if (full === undefined) { full = el.textContent; el.dataset.full = full; }
    el.textContent = full;
    el.classList.remove("off");
    if (el.getComputedTextLength() <= w) return;
    var chars = Array.from(full);
    for (var n = chars.length - 1; n >= 4; n--) {
      var t;
      if (middle) {
        var head = Math.ceil((n - 1) / 2), tail = n - 1 - head;
        t = chars.slice(0, head).join("") + "…" + (tail > 0 ? chars.slice(chars.length - tail).join("") : "");
      } else {
        t = chars.slice(0, n - 1).join("") + "…";
      }
      el.textContent = t;
      if (el.getComputedTextLength() <= w) return;
    }
    el.textContent = full;
    el.classList.add("off"); // shown on hover and focus
  }

  // fitLabels reads the scale the map is drawn at and sets what keeps its
  // text at LEGIBLE px or more: fonts enlarged, secondary labels dropped
  // (edge labels show on hover or focus), names shortened to their box.
  function fitLabels() {
    var svg = document.getElementById("map");
    if (!svg || !(svg instanceof SVGSVGElement) || !svg.viewBox.baseVal) return;
    var vb = svg.viewBox.baseVal, r = svg.getBoundingClientRect();
    if (!vb.width || !vb.height || !r.width || !r.height) return;
    // The viewBox is fitted into the element's box keeping its aspect
    // ratio: the smaller of the two ratios is the scale.
    var s = Math.min(r.width / vb.width, r.height / vb.height);
    svg.style.setProperty("--s", String(s));
    svg.style.setProperty("--z", String(Math.max(1, LEGIBLE / (EDGE_LABEL * s))));
    svg.style.setProperty("--zb", String(Math.max(1, LEGIBLE / (BADGE * s))));
    svg.dataset.scale = s.toFixed(3);
    svg.classList.toggle("small-labels", EDGE_LABEL * s < LEGIBLE);
    var kind = Math.max(KIND, LEGIBLE / s);
    svg.classList.toggle("kind-off", kind > KIND_MAX);
    svg.querySelectorAll("g.node").forEach(function (g) {
      var shape = g.querySelector(".shape"), name = g.querySelector("text.name"), tag = g.querySelector("text.kind"), stat = g.querySelector("text.stat");
      if (!shape || !name) return;
      var w = shape.getBBox().width - 18;
      if (stat && (s < 1 || stat.dataset.full !== undefined)) fitText(stat, w, false);
      if (Math.max(NAME, LEGIBLE / s) > NAME || name.dataset.full !== undefined) fitText(name, w, true);
      if (tag && kind <= KIND_MAX && (kind > KIND || tag.dataset.full !== undefined)) fitText(tag, w, false);
    });
  }

  var fit = document.getElementById("fit");
  if (fit) fit.addEventListener("change", fitLabels);
  var resizing = 0;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(fitLabels, 100);
  });
  fitLabels();
  body.dataset.labelsFitted = "1";

  if (body.dataset.live !== "1" || !body.dataset.ws) return;
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
      fitLabels();
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
