// Updraft dashboard: live updates over server-sent events, confirmations
// for irreversible buttons, and the filter match counter. No inline script
// is allowed by the Content-Security-Policy; everything hooks on data-*
// attributes.
"use strict";

(function () {
  // <div data-live="/ui/campaigns/ID/live">: replace fragments by id.
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var src = new EventSource(el.getAttribute("data-live"));
    var status = document.getElementById("live-status");
    src.addEventListener("replace", function (ev) {
      var f = JSON.parse(ev.data);
      var target = document.getElementById(f.id);
      var tpl = document.createElement("template");
      tpl.innerHTML = f.html;
      var next = tpl.content.firstElementChild;
      // A section that did not change stays as it is: replacing it would
      // drop what the operator is typing and where the keyboard focus is.
      // The first update after (re)connecting repeats every section.
      if (target && next && !target.isEqualNode(next)) {
        target.replaceWith(next);
      }
      var n = parseInt(document.body.getAttribute("data-updates") || "0", 10) + 1;
      document.body.setAttribute("data-updates", String(n));
      if (status) {
        status.textContent = "live";
        status.className = "live on";
      }
    });
    src.addEventListener("error", function () {
      if (status) {
        status.textContent = "reconnecting…";
        status.className = "live off";
      }
    });
  });

  // <button data-confirm="Abort the campaign?">
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-confirm]");
    if (b && !window.confirm(b.getAttribute("data-confirm"))) {
      ev.preventDefault();
    }
  });

  // <input data-count-url="/ui/devices/count" data-count-target="ID">:
  // shows how many devices a filter expression matches, as it is typed.
  document.querySelectorAll("[data-count-url]").forEach(function (input) {
    var out = document.getElementById(input.getAttribute("data-count-target"));
    var timer = null;
    var seq = 0;
    function update() {
      var mine = ++seq;
      var url = input.getAttribute("data-count-url") + "?q=" + encodeURIComponent(input.value);
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          if (mine === seq && out) {
            out.innerHTML = html;
          }
        }).catch(function () {}); // a failed or cut-short count keeps the last one
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(update, 300);
    });
  });
})();

// <form data-preview-url="/ui/campaigns/preview" data-preview-target="ID">:
// as the form is edited, fetches a preview of what it would do (the form's
// fields as the query, never its CSRF token) and puts it in place of the
// element with that id. Bumps data-previews on the new element.
(function () {
  "use strict";
  document.querySelectorAll("form[data-preview-url]").forEach(function (form) {
    var id = form.getAttribute("data-preview-target");
    var timer = null;
    var seq = 0;
    function update() {
      var mine = ++seq;
      var q = new URLSearchParams();
      new FormData(form).forEach(function (v, k) {
        if (k !== "csrf" && typeof v === "string") {
          q.append(k, v);
        }
      });
      fetch(form.getAttribute("data-preview-url") + "?" + q.toString(), {
        credentials: "same-origin", headers: { Accept: "text/html" }
      })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var out = document.getElementById(id);
          if (html === null || mine !== seq || !out) {
            return;
          }
          out.outerHTML = html;
          var fresh = document.getElementById(id);
          if (fresh) {
            fresh.setAttribute("data-previews", String(mine));
          }
        }).catch(function () {}); // a failed or cut-short preview keeps the last one
    }
    function later() {
      clearTimeout(timer);
      timer = setTimeout(update, 300);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  });
})();
