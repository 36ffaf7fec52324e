// The console's only script, served from Loa itself (the pages' Content-Security-Policy allows
// no inline script): the content form's live preview and the report's print button.
//
// The preview never inserts HTML: Loa sends Telegram text as a tree of Telegram's allowed tags
// (`rich`), and this script builds it with createElement and textContent, checking each tag and
// attribute against the same short list again.
(function () {
  'use strict';

  var ALLOWED = {
    b: [], strong: [], i: [], em: [], u: [], ins: [], s: [], strike: [], del: [],
    span: ['class'], 'tg-spoiler': [], a: ['href'], code: ['class'], pre: [],
    blockquote: ['expandable'], 'tg-emoji': ['emoji-id']
  };

  function build(nodes, parent) {
    (nodes || []).forEach(function (node) {
      if (typeof node === 'string') {
        parent.appendChild(document.createTextNode(node));
        return;
      }
      if (!node || !Object.prototype.hasOwnProperty.call(ALLOWED, node.tag)) return;
      var el = document.createElement(node.tag);
      Object.keys(node.attrs || {}).forEach(function (name) {
        var value = String(node.attrs[name]);
        if (ALLOWED[node.tag].indexOf(name) < 0) return;
        if (name === 'href' && !/^(https?|tg):\/\//i.test(value)) return;
        el.setAttribute(name, value);
      });
      build(node.children, el);
      parent.appendChild(el);
    });
  }

  function number(n) { return Number(n || 0).toLocaleString('vi-VN'); }

  function livePreview(form, panel) {
    var timer = null;
    function fields() {
      var data = new FormData(form);
      var texts = {};
      form.querySelectorAll('textarea[data-channel]').forEach(function (box) {
        if (box.value) texts[box.dataset.channel] = box.value;
      });
      return {
        title: data.get('title') || '',
        template: data.get('template') || null,
        texts: texts,
        areas: data.getAll('areas'),
        tags: (data.get('tags') || '').split(',').map(function (t) { return t.trim(); }).filter(Boolean),
        channels: data.getAll('channels'),
        observance: data.get('observance') || null,
        unreached: data.get('unreached') || null,
        below_band: data.get('below_band') === 'on',
        send_at: data.get('send_at') || ''
      };
    }
    function show(result) {
      document.getElementById('preview-recipients').textContent = number(result.recipients);
      panel.querySelectorAll('.preview-channel').forEach(function (el) { el.remove(); });
      var anchor = document.getElementById('preview-areas') || panel.querySelector('p.muted:last-child');
      (result.channels || []).forEach(function (c) {
        var box = document.createElement('div');
        box.className = 'preview-channel';
        box.dataset.channel = c.channel;
        var h = document.createElement('h3');
        h.style.fontSize = '1rem';
        h.textContent = (c.channel_label || c.channel) + ' · ' + number(c.recipients) + ' người';
        var body = document.createElement('div');
        body.className = 'preview body';
        if (c.error) { body.textContent = c.error; body.classList.add('error'); }
        else if (c.rich) { build(c.rich, body); }
        else { body.textContent = c.text || ''; }
        var size = document.createElement('p');
        size.className = 'muted size';
        size.textContent = c.sms_segments
          ? c.characters + ' ký tự · ' + c.sms_segments + ' tin nhắn (' + (c.sms_encoding === 'GSM-7' ? 'không dấu' : 'có dấu') + ') · chi phí ước tính ' + number(Math.round(c.cost_vnd)) + ' đồng'
          : c.characters + ' ký tự';
        box.append(h, body, size);
        if (c.budget_left !== null && c.budget_left !== undefined) {
          var budget = document.createElement('p');
          budget.className = (c.over_budget ? 'below' : 'muted') + ' budget';
          budget.textContent = c.over_budget
            ? 'Vượt ngân sách năm của kênh (còn ' + number(Math.round(Math.max(c.budget_left, 0))) + ' đ): khi đến giờ gửi, đợt gửi sẽ chờ quản trị viên quyết định.'
            : 'Ngân sách năm của kênh còn ' + number(Math.round(c.budget_left)) + ' đ.';
          box.append(budget);
        }
        panel.insertBefore(box, anchor);
      });
      var areas = document.querySelector('#preview-areas tbody');
      if (areas && result.by_area) {
        areas.replaceChildren();
        result.by_area.forEach(function (a) {
          var row = document.createElement('tr');
          row.dataset.area = a.code;
          var name = document.createElement('td');
          name.textContent = a.name;
          var n = document.createElement('td');
          n.className = 'num';
          n.textContent = number(a.recipients);
          row.append(name, n);
          areas.append(row);
        });
      }
    }
    function refresh() {
      fetch('/api/preview', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': form.dataset.csrf },
        body: JSON.stringify(fields())
      }).then(function (r) { return r.json(); }).then(function (result) {
        if (result.channels) show(result);
      }).catch(function () {});
    }
    form.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
    form.addEventListener('change', function () { clearTimeout(timer); timer = setTimeout(refresh, 100); });
  }

  var form = document.getElementById('content-form');
  var panel = document.getElementById('preview');
  if (form && panel) livePreview(form, panel);

  document.querySelectorAll('[data-action="print"]').forEach(function (button) {
    button.addEventListener('click', function () { window.print(); });
  });
})();
