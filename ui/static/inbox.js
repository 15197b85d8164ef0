// IQTS inbox: expiry countdowns and live updates over server-sent events. No dependencies.
(function () {
  "use strict";

  function remaining(ms) {
    if (ms <= 0) return "expired";
    var s = Math.floor(ms / 1000), m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (h > 0) return h + "h " + String(m % 60).padStart(2, "0") + "m left";
    return m + "m " + String(s % 60).padStart(2, "0") + "s left";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-expires")) - now;
      el.textContent = remaining(left);
      el.classList.toggle("soon", left < 120000);
    });
  }

  var refreshes = 0;  // answers can arrive out of order: only the latest request may replace the list

  function refreshList(box) {
    var mine = ++refreshes;
    fetch(box.getAttribute("data-fragment"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { if (r.ok) return r.text(); throw new Error(String(r.status)); })
      .then(function (html) { if (mine === refreshes) { box.innerHTML = html; tick(); } })
      .catch(function () { /* the next event or a reload will try again */ });
  }

  function onRequestChanged(id) {
    var reason = document.getElementById("reason");
    if (reason && reason.value.trim() !== "") {
      var note = document.getElementById("changed");
      if (note) note.hidden = false;  // do not throw away a reason being typed
      return;
    }
    window.location.replace("/inbox/" + encodeURIComponent(id));
  }

  function checkRequest(id) {
    var shown = document.body.getAttribute("data-request-state");
    fetch("/inbox/" + encodeURIComponent(id) + "/state", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (r.ok) return r.json(); throw new Error(String(r.status)); })
      .then(function (body) { if (body.state !== shown) onRequestChanged(id); })
      .catch(function () { /* the next event or a reload will try again */ });
  }

  function live() {
    if (!document.body.hasAttribute("data-live") || !window.EventSource) return;
    var indicator = document.getElementById("live");
    var list = document.getElementById("pending");
    var requestId = document.body.getAttribute("data-request-id");
    var source = new EventSource("/inbox/events");
    function show(on) {
      if (!indicator) return;
      indicator.classList.toggle("on", on);
      indicator.classList.toggle("off", !on);
      var state = indicator.querySelector(".state");
      if (state) state.textContent = on ? "live" : "off (reload to see changes)";
    }
    source.onopen = function () {
      show(true);
      // catch up on anything between the page load and the subscription (an order can fill in between)
      if (list) refreshList(list);
      if (requestId) checkRequest(requestId);
    };
    source.onerror = function () {
      show(false);
    };
    source.addEventListener("approval", function (e) {
      var data = JSON.parse(e.data);
      if (list) refreshList(list);
      if (requestId && data.id === requestId) onRequestChanged(requestId);
    });
    source.addEventListener("order", function (e) {
      var data = JSON.parse(e.data);
      if (requestId && data.approval_id === requestId) onRequestChanged(requestId);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    live();
  });
})();
