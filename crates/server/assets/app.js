// Tributary dashboard: the buttons' POSTs (JSON, same origin, with the page's CSRF token) and
// the reload of pages showing a run in progress. Nothing else runs in the page.
"use strict";

(function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function show(text, kind) {
    var box = document.getElementById("message");
    if (!box) { return; }
    box.textContent = text;
    box.className = "message " + kind;
  }

  function post(button) {
    var url = button.getAttribute("data-post");
    var body = button.getAttribute("data-body") || "{}";
    button.disabled = true;
    show("Starting…", "ok");
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Tributary-CSRF": csrf },
      body: body
    }).then(function (response) {
      return response.json().then(function (reply) {
        return { ok: response.ok, status: response.status, reply: reply };
      }, function () {
        return { ok: false, status: response.status, reply: {} };
      });
    }).then(function (r) {
      if (r.ok && r.reply.run_id) {
        show("Run " + r.reply.run_id + " started.", "ok");
        window.location.assign("/runs/" + encodeURIComponent(r.reply.run_id));
      } else {
        button.disabled = false;
        show((r.reply && r.reply.error) || ("The server answered " + r.status + "."), "error");
      }
    }, function (e) {
      button.disabled = false;
      show("The request failed: " + e, "error");
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.closest) {
      var button = target.closest("button[data-post]");
      if (button) {
        event.preventDefault();
        post(button);
      }
    }
  });

  var refresh = document.body && document.body.getAttribute("data-refresh");
  if (refresh) {
    window.setTimeout(function () { window.location.reload(); }, Number(refresh) * 1000);
  }
})();
