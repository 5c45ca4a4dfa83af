// winserve's page script: keeps the status line and job progress current. The pages work
// without it (they refresh themselves); it only saves reloads. No inline script anywhere.
(function () {
  "use strict";

  function getJSON(url) {
    return fetch(url, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
      if (!r.ok && r.status !== 503) { throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }

  // The status line: a banner that says when the model is loading, restarting or failed, and
  // forms that are disabled until it is serving again.
  function watchStatus() {
    var line = document.getElementById("status");
    if (!line) { return; }
    var hadModel = line.dataset.hasModel === "yes";
    function update(state) {
      line.textContent = state.text;
      line.className = "status status-" + state.key;
      line.dataset.status = state.status;
      if (!hadModel && state.serving) { window.location.reload(); return; }
      document.querySelectorAll("main form fieldset").forEach(function (set) {
        set.disabled = !state.serving;
      });
    }
    function poll() {
      getJSON(line.dataset.statusUrl || "/page-status").then(update).catch(function () {
        line.textContent = "winserve does not answer; it may have been stopped.";
        line.className = "status status-failed";
      }).then(function () {
        window.setTimeout(poll, line.dataset.status === "ready" ? 3000 : 1000);
      });
    }
    window.setTimeout(poll, 1000);
  }

  // A scoring job: the progress bar follows the job; the page reloads once it has ended so
  // that the download link and the list of problems appear.
  function watchJob() {
    var job = document.getElementById("job");
    if (!job || (job.dataset.jobState !== "queued" && job.dataset.jobState !== "running")) {
      return;
    }
    var bar = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    function poll() {
      getJSON(job.dataset.jobStatus).then(function (s) {
        bar.value = s.percent;
        bar.textContent = s.percent + " %";
        text.textContent = s.percent + " % \u2014 " + s.done_rows.toLocaleString() + " of " +
          (s.total_rows ? s.total_rows.toLocaleString() : "?") + " rows.";
        if (s.state === "done" || s.state === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 300);
        }
      }).catch(function () { window.setTimeout(poll, 1000); });
    }
    poll();
  }

  // After a prediction, move focus to the result so that screen readers announce it.
  function focusResult() {
    var result = document.getElementById("result");
    if (result) { result.focus(); }
  }

  // Why this answer and what if (issue 25). With the script, the form asks for the answer
  // alone ("later"), shows it, then fetches the explanation; as the form is edited the what-if
  // charts are fetched again for its row (debounced). Without the script the form post brings
  // the answer and the explanation together.
  function explanations() {
    var form = document.getElementById("predict-form");
    if (!form || !form.dataset.whyUrl) { return; }
    var later = document.createElement("input");
    later.type = "hidden"; later.name = "later"; later.value = "1";
    form.appendChild(later);
    function panel(url) {
      return fetch(url, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "Accept": "text/html" }
      }).then(function (r) { return r.text().then(function (t) { return { ok: r.ok, html: t }; }); });
    }
    var why = document.getElementById("why");
    if (why && why.dataset.later === "yes") {
      panel(form.dataset.whyUrl).then(function (got) {
        if (got.ok) { why.outerHTML = got.html; } else {
          document.getElementById("why-note").textContent = "The explanation could not be worked out.";
        }
      }).catch(function () {
        document.getElementById("why-note").textContent = "winserve did not answer.";
      });
    }
    var timer = null;
    var asked = 0;
    function redraw() {
      var target = document.getElementById("whatif");
      if (!target) { return; }
      var mine = ++asked;  // an older answer arriving late does not replace a newer one
      target.setAttribute("aria-busy", "true");
      panel(form.dataset.whatifUrl).then(function (got) {
        if (mine !== asked) { return; }
        target.innerHTML = got.html.indexOf("<html") >= 0 ?
          "<p class=\"muted\">The what-if charts could not be drawn.</p>" : got.html;
        target.dataset.redrawn = String(mine);
        target.removeAttribute("aria-busy");
      }).catch(function () { target.removeAttribute("aria-busy"); });
    }
    function edited() {
      window.clearTimeout(timer);
      timer = window.setTimeout(redraw, 400);
    }
    // a printout has each chart's numbers: the tables behind the charts open for printing
    window.addEventListener("beforeprint", function () {
      document.querySelectorAll(".why details").forEach(function (d) { d.open = true; });
    });
    form.addEventListener("input", edited);
    form.addEventListener("change", edited);
  }

  // Times are written in UTC (ISO 8601, which the page shows without the script); shown in
  // the viewer's own time zone and language here (issue 22).
  function localTimes() {
    document.querySelectorAll("time[data-local-time]").forEach(function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      node.title = node.getAttribute("datetime");
      node.textContent = when.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    watchStatus();
    watchJob();
    focusResult();
    explanations();
  });
})();
