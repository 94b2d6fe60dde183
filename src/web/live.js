// Swaps each page's #live part for a fresh copy every base interval (no
// full reload: forms and their typing stay), and previews the faults a
// squelch regex matches while it is typed. The fresh copy is HTML the
// server rendered and escaped; the preview is written with textContent.
(function () {
  var every = Number(document.body.dataset.refreshMs) || 60000;
  var live = document.getElementById("live");
  var stamp = document.getElementById("updated");
  function refresh() {
    if (!live) return;
    fetch(location.href, { headers: { "X-Cimaa-Live": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live");
        if (fresh) {
          live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.adoptNode(n); }));
          if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
        }
      })
      .catch(function (e) { if (stamp) stamp.textContent = "refresh failed (" + e + ")"; });
  }
  setInterval(refresh, every);

  var regex = document.getElementById("regex");
  var preview = document.getElementById("preview");
  if (!regex || !preview) return;
  var timer = null;
  function show() {
    var value = regex.value;
    if (!value) { preview.textContent = ""; return; }
    fetch("/api/preview?regex=" + encodeURIComponent(value), { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (answer) {
        preview.textContent = "";
        if (!answer.ok) { preview.textContent = answer.body.error || "invalid regex"; return; }
        var head = document.createElement("div");
        var n = answer.body.length;
        head.textContent = n === 0 ? "matches no current fault" : "would squelch " + n + " current fault" + (n === 1 ? "" : "s");
        preview.appendChild(head);
        var list = document.createElement("ul");
        answer.body.slice(0, 50).forEach(function (f) {
          var item = document.createElement("li");
          item.textContent = f.agent + "  " + f.name + "  (" + f.severity + ")  " + f.message;
          list.appendChild(item);
        });
        preview.appendChild(list);
      })
      .catch(function () { preview.textContent = "preview unavailable"; });
  }
  regex.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(show, 250); });
})();
