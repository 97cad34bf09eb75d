// Minimal client of the Mus2Pic API: create a job, follow it over WebSocket.
'use strict';
const $ = (id) => document.getElementById(id);

async function loadStyles() {
  const r = await fetch('/api/presets');
  if (!r.ok) return;
  const { presets } = await r.json();
  for (const p of presets) {
    const o = document.createElement('option');
    o.value = p.name; o.textContent = p.name;
    $('style').appendChild(o);
  }
}

function showError(e) {
  $('error').textContent = e && e.error ? `${e.error.message} (${e.error.detail}). ${e.error.hint}` : String(e);
}

function follow(job) {
  $('live').hidden = false;
  $('findings').innerHTML = '';
  $('images').innerHTML = '';
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws/jobs/${job.id}`);
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    const st = ev.type === 'snapshot' ? ev.job.status : ev.status;
    if (st) $('status').textContent = st;
    if (ev.type === 'progress' || ev.type === 'step') {
      $('status').textContent = `${ev.step} ${ev.fraction !== undefined ? Math.round(ev.fraction * 100) + '%' : ''}`;
    }
    if (ev.type === 'finding') {
      const li = document.createElement('li');
      li.textContent = ev.text;
      $('findings').appendChild(li);
    }
    const images = ev.type === 'snapshot' ? ev.job.images : ev.images;
    if (images && images.length) {
      $('images').innerHTML = '';
      for (const im of images) {
        const img = document.createElement('img');
        img.src = im.thumb_url; img.alt = `image ${im.index + 1}`;
        const a = document.createElement('a'); a.href = im.url; a.appendChild(img);
        $('images').appendChild(a);
      }
    }
  };
}

$('job').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('error').textContent = '';
  let r;
  if ($('file').files.length) {
    const fd = new FormData();
    fd.append('file', $('file').files[0]);
    fd.append('style', $('style').value);
    r = await fetch('/api/jobs', { method: 'POST', body: fd });
  } else {
    r = await fetch('/api/jobs', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ source: $('source').value, style: $('style').value }),
    });
  }
  const body = await r.json();
  if (!r.ok) { showError(body); return; }
  follow(body);
});

loadStyles();
