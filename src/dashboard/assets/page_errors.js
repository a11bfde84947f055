// First of all (inlined at the top of both pages): any uncaught error lands in #page-errors, which
// the headless checks read.
(function () {
  function note(text) {
    var box = document.getElementById('page-errors');
    if (!box) { window.__pendingErrors = (window.__pendingErrors || []).concat([text]); return; }
    var li = document.createElement('li');
    li.textContent = text;
    box.appendChild(li);
  }
  window.__noteError = note;
  window.addEventListener('error', function (e) { note('error: ' + (e.message || e) + ' at ' + (e.filename || '') + ':' + (e.lineno || '')); });
  window.addEventListener('unhandledrejection', function (e) { note('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)); });
})();
