// The live page: polls /api/snapshot every 400 ms and redraws workers, progress, task stream,
// throughput, errors and the scheduler's own CPU and memory (DOM hooks: tr.worker[data-name],
// tr.progress[data-name][data-done][data-erred], #updated[data-time-ms][data-renders], #status, #page-errors).
'use strict';
(function () {
  var POLL_MS = 400, STREAM_MS = 10000;
  var token = new URLSearchParams(location.search).get('token');
  var url = 'api/snapshot' + (token ? '?token=' + encodeURIComponent(token) : '');
  var chart = null, renders = 0;
  var el = DT.el, td = DT.td, num = DT.num;

  function setStatus(text, cls) {
    var s = document.getElementById('status');
    s.textContent = text;
    s.className = 'status ' + cls;
  }

  function renderSummary(s) {
    var t = s.totals || {}, sc = s.scheduler || {}, by = s.tasks_by_state || {};
    var threads = (s.workers || []).reduce(function (a, w) { return a + num(w.nthreads); }, 0);
    var cards = [
      DT.card('workers', (s.workers || []).length, 'workers-count'),
      DT.card('threads', threads),
      DT.card('tasks done', num(t.done), 'tasks-done'),
      DT.card('erred', num(t.erred), 'tasks-erred'),
      DT.card('submitted', num(t.submitted)),
      DT.card('processing / waiting', num(by.processing) + ' / ' + (num(by.waiting) + num(by.queued) + num(by.released))),
      DT.card('in memory', num(by.memory)),
      DT.card('transfers', num(t.transfers) + ' (' + DT.bytes(t.transfer_bytes) + ')'),
      DT.card('scheduler CPU', num(sc.cpu_percent).toFixed(1) + ' %', 'scheduler-cpu'),
      DT.card('scheduler RSS', DT.bytes(sc.rss_bytes), 'scheduler-rss'),
      DT.card('uptime', DT.seconds((num(s.time_ms) - num(s.started_ms)) / 1000))
    ];
    var box = document.getElementById('summary');
    box.replaceChildren.apply(box, cards);
    var where = (sc.host || '') + (sc.address ? ' ' + sc.address : '') + (sc.job_id ? ' job ' + sc.job_id : '');
    document.getElementById('scheduler').textContent = where;
  }

  function renderProgress(rows) {
    DT.replaceRows('#progress', rows.map(function (p) {
      var done = num(p.done), erred = num(p.erred), running = num(p.running), waiting = num(p.waiting);
      return el('tr', {'class': 'progress', 'data-name': String(p.name), 'data-done': done, 'data-erred': erred,
                       'data-running': running, 'data-waiting': waiting}, null, [
        td(p.name, 'name'),
        el('td', {'class': 'barcol'}, null, [DT.bar([
          {value: done, cls: 'done', title: done + ' done'}, {value: running, cls: 'running', title: running + ' running'},
          {value: waiting, cls: 'waiting', title: waiting + ' waiting'}, {value: erred, cls: 'erred', title: erred + ' erred'}],
          done + running + waiting + erred)]),
        td(done, 'n'), td(running, 'n'), td(waiting, 'n'), td(erred, erred ? 'n bad' : 'n'), td(num(p.in_memory), 'n')]);
    }));
  }

  function renderWorkers(workers) {
    DT.replaceRows('#workers', workers.map(function (w) {
      var held = num(w.memory_held), spilled = num(w.memory_spilled), limit = num(w.memory_limit);
      var flags = [];
      if (w.paused) flags.push('paused');
      if (w.retiring) flags.push('retiring');
      var memText = DT.bytes(held) + ' held, ' + DT.bytes(spilled) + ' spilled' +
                    (limit > 0 ? ' of ' + DT.bytes(limit) : '') + ' (process ' + DT.bytes(w.memory_process) + ')';
      return el('tr', {'class': 'worker', 'data-name': String(w.name), 'data-processing': num(w.processing),
                       'data-paused': w.paused ? 1 : 0}, null, [
        td(w.name, 'name'), td(w.host), td(num(w.nthreads), 'n'), td(num(w.processing), 'n'), td(num(w.tasks_done), 'n'),
        el('td', {'class': 'barcol'}, null, [
          DT.bar([{value: held, cls: 'held', title: 'held'}, {value: spilled, cls: 'spilled', title: 'spilled'}],
                 limit > 0 ? limit : held + spilled),
          el('div', {'class': 'small'}, memText)]),
        td(flags.join(' '), flags.length ? 'flag' : ''), td(num(w.last_seen_s).toFixed(1) + ' s ago')]);
    }));
  }

  function render(s) {
    renderSummary(s);
    renderProgress(s.progress || []);
    renderWorkers(s.workers || []);
    var t1 = num(s.time_ms);
    DT.taskStream(document.getElementById('task-stream'), document.getElementById('task-stream-legend'),
                  s.task_stream || [], t1 - STREAM_MS, t1);
    chart = DT.throughput(document.getElementById('throughput'), chart, s.throughput || []);
    DT.replaceRows('#errors', DT.errorRows(s.errors || []));
    var up = document.getElementById('updated');
    up.setAttribute('data-time-ms', String(s.time_ms));
    up.setAttribute('data-renders', String(++renders));  // snapshots drawn since the page loaded
    up.textContent = DT.clock(t1);
  }

  function poll() {
    fetch(url, {cache: 'no-store', credentials: 'same-origin'}).then(function (r) {
      if (r.status === 503) { setStatus('waiting for the first snapshot', 'waiting'); return null; }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (s) {
      if (s) { render(s); setStatus('live', 'live'); }
    }, function () {
      setStatus('disconnected', 'disconnected');
    }).then(function () { setTimeout(poll, POLL_MS); }, function (e) {
      window.__noteError('render: ' + (e && e.stack || e));
      setTimeout(poll, POLL_MS);
    });
  }

  DT.flushPendingErrors();
  poll();
})();
