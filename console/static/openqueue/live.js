// Live pages: a page whose #live region has data-live="N" refreshes that
// region every N seconds from the same URL, while the tab is visible.
// Without JavaScript the page is an ordinary page (reload to refresh).
// A refresh never clobbers what the user is doing: it waits while a box is
// ticked, a field has focus or text is selected in the region. The "Live"
// toggle pauses it; the choice is remembered.
(function () {
  "use strict";
  var region = document.getElementById("live");
  if (!region || !region.dataset.live) return;
  var seconds = Math.max(2, parseInt(region.dataset.live, 10) || 5);
  var KEY = "openqueue-live-paused";
  var paused = window.localStorage && localStorage.getItem(KEY) === "1";

  var toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "small live-toggle";
  toggle.setAttribute("aria-pressed", String(!paused));
  function label() {
    toggle.textContent = paused ? "Live updates: paused" : "Live updates: on";
    toggle.setAttribute("aria-pressed", String(!paused));
  }
  label();
  toggle.addEventListener("click", function () {
    paused = !paused;
    if (window.localStorage) localStorage.setItem(KEY, paused ? "1" : "0");
    label();
  });
  region.parentNode.insertBefore(toggle, region);

  function busy() {
    if (region.querySelector("input:checked")) return true;
    if (region.contains(document.activeElement) && document.activeElement !== document.body) {
      return true;
    }
    var selection = window.getSelection && window.getSelection();
    return !!(selection && selection.toString() && region.contains(selection.anchorNode));
  }

  function refresh() {
    if (paused || document.hidden || busy()) return;
    fetch(window.location.href, { headers: { "X-Requested-With": "live" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null || busy()) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) {
          region.innerHTML = fresh.innerHTML;
          region.dispatchEvent(new CustomEvent("live:updated"));
        }
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
