// baton's only script: fresh relative times, the viewer's local times, confirm dialogs,
// live run updates (server-sent events), and the log's live tail and search. Every page
// works without it; it only makes them better.
(function () {
  'use strict';

  var ICONS = {
    succeeded: '✓', failed: '✗', upstream_failed: '⚠', running: '▶', queued: '◷',
    pending: '○', retrying: '↻', waiting_approval: '⏸', skipped: '↷', cancelled: '⊘',
    timed_out: '⌛', interrupted: '↯'
  };
  var FINAL = { succeeded: 1, failed: 1, cancelled: 1 };

  function relative(delta) {
    var past = delta <= 0;
    var s = Math.floor(Math.abs(delta) / 1000);
    if (s < 5) return 'just now';
    var w = s < 60 ? s + ' s' : s < 3600 ? Math.floor(s / 60) + ' min'
      : s < 86400 ? Math.floor(s / 3600) + ' h' : Math.floor(s / 86400) + ' d';
    return past ? w + ' ago' : 'in ' + w;
  }

  function refreshTimes(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d.getTime())) return;
      t.textContent = relative(d.getTime() - Date.now());
      if (!t.dataset.utc) {
        t.dataset.utc = t.title;
        t.title = d.toLocaleString() + ' (your time) · ' + t.dataset.utc;
      }
    });
    root.querySelectorAll('.viewer-time[data-instant]').forEach(function (s) {
      var d = new Date(s.dataset.instant);
      if (!isNaN(d.getTime())) {
        s.textContent = d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) + ' your time';
      }
    });
  }

  // Destructive actions: the button's form would lead to a confirm page; with the script,
  // the page's one dialog asks instead and posts the action itself.
  function setUpConfirm() {
    var dialog = document.getElementById('confirm');
    if (!dialog || typeof dialog.showModal !== 'function') return;
    var form = dialog.querySelector('form');
    document.addEventListener('submit', function (e) {
      var origin = e.target;
      var button = origin.querySelector('button[data-action]');
      if (!button || (origin.getAttribute('method') || 'get').toLowerCase() !== 'get') return;
      e.preventDefault();
      form.setAttribute('action', origin.getAttribute('action'));
      showQuestion(form.querySelector('.confirm-text'), origin.dataset.question || '');
      // A gate's decision takes a comment; other actions post none.
      var comment = form.querySelector('label.comment');
      var decides = button.dataset.action === 'approve' || button.dataset.action === 'reject';
      comment.hidden = !decides;
      comment.querySelector('input').value = '';
      comment.querySelector('input').disabled = !decides;
      var back = origin.querySelector('input[name=back]');
      form.querySelector('input[name=back]').value = back ? back.value : location.pathname + location.search;
      var ok = form.querySelector('button[data-confirm]');
      ok.setAttribute('data-confirm', button.dataset.action);
      ok.textContent = button.textContent;
      dialog.showModal();
    });
    dialog.querySelector('.dialog-close').addEventListener('click', function () { dialog.close(); });
  }

  // `backticked` names show as code, as on the confirm page the server renders.
  function showQuestion(p, text) {
    p.textContent = '';
    text.split('`').forEach(function (part, n) {
      if (n % 2 === 1) {
        var code = document.createElement('code');
        code.textContent = part;
        p.appendChild(code);
      } else if (part) {
        p.appendChild(document.createTextNode(part));
      }
    });
  }

  function setClassState(el, state) {
    var cls = (el.getAttribute('class') || '').replace(/\bstate-\S+/g, '').trim();
    el.setAttribute('class', cls + ' state-' + state);
    el.setAttribute('data-state', state);
  }

  function setNodeState(node, state) {
    setClassState(node, state);
    var icon = node.querySelector('tspan.icon');
    if (icon) icon.textContent = (ICONS[state] || '•') + ' ';
    var sub = node.querySelector('text.sub');
    if (sub) sub.textContent = state.replace(/_/g, ' ');
    var title = node.querySelector('title');
    if (title) title.textContent = title.textContent.replace(/ — .*$/, '') + ' — ' + state;
  }

  function setRunState(state) {
    var el = document.getElementById('run-state');
    if (!el) return;
    setClassState(el, state);
    el.title = state;
    el.textContent = (ICONS[state] || '•') + ' ' + state;
    if (FINAL[state]) {
      document.querySelectorAll('button[data-action=cancel]').forEach(function (b) {
        b.closest('form').hidden = true;
      });
    }
  }

  function findNode(key) {
    var esc = window.CSS && CSS.escape ? CSS.escape(key) : key.replace(/"/g, '\\"');
    return document.querySelector('svg#dag g.node[data-task="' + esc + '"]');
  }

  // A run page follows the run's events and re-fetches the fragments they touch.
  function setUpLive() {
    var live = document.getElementById('live');
    if (!live || !window.EventSource) return;
    var pending = {};
    function refetch(what) {
      if (pending[what]) return;
      pending[what] = setTimeout(function () {
        pending[what] = null;
        // The same page of a large run's task table as the one shown.
        var query = new URLSearchParams(location.search);
        query.set('fragment', what);
        fetch(location.pathname + '?' + query.toString(), { headers: { Accept: 'text/html' } })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            var wrap = document.getElementById(what + '-wrap');
            if (html === null || !wrap) return;
            wrap.innerHTML = html;
            refreshTimes(wrap);
          })
          .catch(function () {});
      }, 300);
    }
    var es = new EventSource(live.dataset.events);
    function onTask(ev) {
      var e = JSON.parse(ev.data);
      var node = e.task && findNode(e.task);
      if (node && e.data && e.data.state) setNodeState(node, e.data.state); else refetch('dag');
      refetch('tasks');
    }
    es.addEventListener('task_state', onTask);
    es.addEventListener('task_reopened', onTask);
    es.addEventListener('run_state', function (ev) {
      var e = JSON.parse(ev.data);
      if (e.data && e.data.state) setRunState(e.data.state);
      refetch('summary');
    });
    es.addEventListener('attempt_started', function () { refetch('gantt'); refetch('tasks'); });
    es.addEventListener('attempt_finished', function () { refetch('gantt'); refetch('tasks'); });
    es.addEventListener('end', function (ev) {
      es.close();
      setRunState(JSON.parse(ev.data).state);
      refetch('dag'); refetch('gantt'); refetch('tasks'); refetch('summary');
    });
  }

  // The log: each line its own element; live lines arrive by server-sent events.
  function setUpLog() {
    var log = document.getElementById('log');
    if (!log) return;
    var search = document.getElementById('log-search');
    var count = document.getElementById('log-matches');
    var partial = log.dataset.partial === 'true';

    function filterLine(line, q) {
      var hit = q !== '' && line.textContent.toLowerCase().indexOf(q) >= 0;
      line.classList.toggle('match', hit);
      line.classList.toggle('filtered-out', q !== '' && !hit);
      return hit;
    }
    function query() { return search ? search.value.toLowerCase() : ''; }
    function applySearch() {
      var q = query(), n = 0;
      log.querySelectorAll('.line').forEach(function (l) { if (filterLine(l, q)) n++; });
      if (count) count.textContent = q === '' ? '' : n + ' matching lines';
    }
    if (search) search.addEventListener('input', applySearch);

    function addLine(text) {
      var span = document.createElement('span');
      span.className = 'line';
      span.textContent = text;
      log.appendChild(span);
      filterLine(span, query());
      return span;
    }
    function append(text) {
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      var pieces = text.split('\n');
      for (var i = 0; i < pieces.length; i++) {
        var last = i === pieces.length - 1;
        if (last && pieces[i] === '') break;
        var prev = log.lastElementChild;
        if (i === 0 && partial && prev) {
          prev.textContent += pieces[i];
          filterLine(prev, query());
        } else {
          addLine(pieces[i]);
        }
      }
      partial = !/\n$/.test(text);
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    if (log.dataset.stream && window.EventSource) {
      var es = new EventSource(log.dataset.stream);
      es.onmessage = function (ev) { append(ev.data); };
      es.addEventListener('end', function () { es.close(); log.removeAttribute('data-stream'); });
    }
  }

  document.addEventListener('DOMContentLoaded', function () {
    refreshTimes(document);
    setInterval(function () { refreshTimes(document); }, 30000);
    setUpConfirm();
    setUpLive();
    setUpLog();
  });
})();
