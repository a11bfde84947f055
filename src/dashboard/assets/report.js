// The job report page: reads the embedded report JSON (#report-data) and draws the summary,
// per-name table (tr.by-name[data-name][data-done][data-erred]), task stream, throughput, worker
// utilisation, transfers and errors; adds #rendered when done.
'use strict';
(function () {
  var el = DT.el, td = DT.td, num = DT.num;
  DT.flushPendingErrors();
  var r = JSON.parse(document.getElementById('report-data').textContent);
  var t0 = num(r.since_ms) > 0 ? num(r.since_ms) : num(r.started_ms), t1 = num(r.finished_ms);
  var duration = Math.max(0, (t1 - t0) / 1000);
  var byName = r.by_name || [], workers = r.workers || [], transfers = r.transfers || [];
  var done = byName.reduce(function (a, b) { return a + num(b.done); }, 0);
  var erred = byName.reduce(function (a, b) { return a + num(b.erred); }, 0);
  var sc = r.scheduler || {};

  document.getElementById('report-span').textContent =
      new Date(t0).toLocaleString() + ' \u2013 ' + new Date(t1).toLocaleString() +
      (sc.host ? ', scheduler on ' + sc.host : '') + (sc.job_id ? ', job ' + sc.job_id : '');
  var summary = document.getElementById('summary');
  summary.replaceChildren(
      DT.card('duration', DT.seconds(duration), 'duration'),
      DT.card('tasks done', done, 'tasks-done'),
      DT.card('erred', erred, 'tasks-erred'),
      DT.card('task time', DT.seconds(byName.reduce(function (a, b) { return a + num(b.task_seconds); }, 0))),
      DT.card('workers', workers.length),
      DT.card('transfers', transfers.reduce(function (a, t) { return a + num(t.count); }, 0) + ' (' +
              DT.bytes(transfers.reduce(function (a, t) { return a + num(t.bytes); }, 0)) + ')'),
      DT.card('scheduler CPU', DT.seconds(sc.cpu_seconds)),
      DT.card('scheduler RSS', DT.bytes(sc.rss_bytes)));

  DT.replaceRows('#by-name', byName.map(function (b) {
    var n = num(b.done), e = num(b.erred);
    return el('tr', {'class': 'by-name', 'data-name': String(b.name), 'data-done': n, 'data-erred': e}, null, [
      td(b.name, 'name'), td(n, 'n'), td(e, e ? 'n bad' : 'n'), td(num(b.task_seconds).toFixed(3), 'n'),
      td(n + e > 0 ? (num(b.task_seconds) / (n + e)).toFixed(4) : '', 'n'), td(num(b.max_s).toFixed(4), 'n')]);
  }));

  var runs = r.task_stream || [];
  DT.taskStream(document.getElementById('task-stream'), document.getElementById('task-stream-legend'), runs, t0, t1);
  document.getElementById('task-stream-note').textContent = runs.length + ' runs shown' +
      (num(r.task_stream_dropped) ? ', ' + num(r.task_stream_dropped) + ' not kept (the counts above are exact)' : '');
  DT.throughput(document.getElementById('throughput'), null, r.throughput || []);

  DT.replaceRows('#workers', workers.map(function (w) {
    var util = duration > 0 && num(w.nthreads) > 0 ? num(w.busy_s) / (num(w.nthreads) * duration) : 0;
    return el('tr', {'class': 'worker', 'data-name': String(w.name), 'data-utilisation': util.toFixed(4)}, null, [
      td(w.name, 'name'), td(w.host), td(num(w.nthreads), 'n'), td(num(w.tasks_done), 'n'), td(num(w.busy_s).toFixed(2), 'n'),
      el('td', {'class': 'barcol'}, null, [DT.bar([{value: util, cls: 'done', title: (100 * util).toFixed(1) + ' %'}], 1),
                                          el('div', {'class': 'small'}, (100 * util).toFixed(1) + ' %')]),
      td(w.alive ? 'yes' : 'no')]);
  }));
  DT.replaceRows('#transfers', transfers.map(function (t) {
    return el('tr', {'class': 'transfer'}, null, [td(t.worker), td(t.peer), td(num(t.count), 'n'), td(DT.bytes(t.bytes), 'n'),
                                                  td(num(t.seconds).toFixed(3), 'n')]);
  }));
  DT.replaceRows('#errors', DT.errorRows(r.errors || []));
  document.querySelector('main').appendChild(el('div', {id: 'rendered', hidden: ''}, 'rendered'));
})();
