// The page's image field (issue 24): each file picker becomes a drop zone, an image pasted
// anywhere on the page goes to the first picker, and the chosen image is shown before it is
// sent. The form works without this script (a plain file picker); the answer is the server's.
(function () {
  "use strict";

  function show(input) {
    var preview = document.getElementById(input.id + "-preview");
    var file = input.files && input.files[0];
    if (!preview) { return; }
    if (!file || file.type.indexOf("image/") !== 0) { preview.hidden = true; return; }
    var reader = new FileReader();  // a data: URL: the page's CSP allows img-src data:
    reader.onload = function () { preview.src = reader.result; preview.hidden = false; };
    reader.readAsDataURL(file);
  }

  function put(input, files) {
    var image = null;
    for (var i = 0; i < files.length; i++) {
      if (files[i].type.indexOf("image/") === 0) { image = files[i]; break; }
    }
    if (!image) { return false; }
    var chosen = new DataTransfer();
    chosen.items.add(image);
    input.files = chosen.files;
    show(input);
    return true;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var inputs = document.querySelectorAll("input[data-image-input]");
    if (!inputs.length) { return; }
    inputs.forEach(function (input) {
      var zone = input.closest("[data-image-drop]");
      input.addEventListener("change", function () { show(input); });
      zone.addEventListener("dragover", function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
      zone.addEventListener("dragleave", function () { zone.classList.remove("dragging"); });
      zone.addEventListener("drop", function (event) {
        event.preventDefault();
        zone.classList.remove("dragging");
        if (event.dataTransfer) { put(input, event.dataTransfer.files); }
      });
    });
    // a pasted image (a screenshot, "Copy image") goes to the picker that has focus, else the
    // first one; text pasted into other fields is left alone
    document.addEventListener("paste", function (event) {
      var data = event.clipboardData;
      if (!data || !data.files || !data.files.length) { return; }
      var target = document.activeElement && document.activeElement.matches &&
        document.activeElement.matches("input[data-image-input]") ? document.activeElement : inputs[0];
      if (put(target, data.files)) { event.preventDefault(); }
    });
  });
})();
