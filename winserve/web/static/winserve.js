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
  });
})();
