// Mus2Pic web app: plain JavaScript, no framework, no build step, no network beyond this server.
// Views are routed by the URL hash (#/create, #/job/7, #/image/12, #/gallery, #/batch, #/settings,
// #/help) so every result has a link. The API is described in docs/api.md.
'use strict';

const $ = (id) => document.getElementById(id);
const STEPS = ['fetch', 'decode', 'analyze', 'prompt', 'render', 'store'];
const STEP_LABEL = { fetch: 'Fetch the song', decode: 'Decode the audio', analyze: 'Listen: tempo, key, mood',
  prompt: 'Write the prompt', render: 'Paint the posters', store: 'Save the images' };
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'partial']);
const KEYS = ['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B'];
const SIZES = ['256x256', '512x512', '768x768', '512x768', '768x512', '1024x1024'];
const VARIABLES = [
  ['mood', 'valence × arousal'], ['palette', 'mode + brightness'], ['color', 'key + mode'],
  ['motion', 'tempo, onsets, beat'], ['texture', 'percussiveness, brightness'], ['energy', 'loudness'],
  ['arc', 'sections'], ['tempo', 'tempo'], ['key', 'key + mode'], ['genre_hint', 'timbre + rhythm'],
  ['title', 'track title'], ['artist', 'uploader'],
];
const SHORTCUTS = [
  ['?', 'Show these shortcuts'], ['N', 'Create (new posters)'], ['G', 'Gallery'], ['B', 'Batch'],
  [',', 'Settings'], ['H', 'Help'], ['/', 'Focus the link box'], ['Enter', 'Submit the form'],
  ['Esc', 'Cancel the running job · close a dialog'], ['← →', 'Previous / next image'],
  ['Ctrl/⌘ S', 'Save the image shown'], ['Space', 'Play / pause the song (job view)'],
];

const state = {
  presets: [], settings: {}, serverDefaults: {}, style: '', file: null,
  lastFragments: null, // fragments of the last analysed song (template preview, suggestions)
  job: null, ws: null, wsJob: 0, lastSeq: 0, jobTimer: 0, refreshAt: 0, refreshPending: false,
  gallery: [], galleryTotal: 0, selected: new Set(), imageList: [], image: null,
  batch: null, batchTimer: 0, batchFiles: [],
};

/* ---------------------------------------------------------------- helpers */

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids) if (c !== null && c !== undefined) e.append(c);
  return e;
}

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || { code: 'http_' + status, message: 'the server answered ' + status };
    super(e.message);
    this.status = status; this.code = e.code; this.detail = e.detail || ''; this.hint = e.hint || '';
  }
}

async function api(path, opts = {}) {
  const init = { method: opts.method || 'GET', headers: {} };
  if (opts.json !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(opts.json); }
  if (opts.form) init.body = opts.form;
  let r;
  try { r = await fetch(path, init); } catch (e) {
    throw new ApiError(0, { error: { code: 'offline', message: 'the server cannot be reached', hint: 'check that mus2pic serve is running, then retry' } });
  }
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

function fmtSecs(s) {
  if (s === null || s === undefined || !isFinite(s)) return '';
  if (s < 10) return s.toFixed(1) + ' s';
  if (s < 90) return Math.round(s) + ' s';
  return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
}
function fmtDur(s) { s = Math.round(s || 0); return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0'); }
function fmtDate(t) { return t ? new Date(t * 1000).toLocaleString() : ''; }
function clamp(v, a, b) { return Math.max(a, Math.min(b, v)); }

let toastTimer = 0;
function toast(msg) {
  const t = $('toast');
  t.textContent = msg; t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 2200);
}

async function copyText(text, what) {
  let ok = false;
  try { await navigator.clipboard.writeText(text); ok = true; } catch (e) {
    const ta = el('textarea', { 'aria-hidden': 'true', style: 'position:fixed;opacity:0' });
    ta.value = text; document.body.append(ta); ta.select();
    try { ok = document.execCommand('copy'); } catch (e2) { ok = false; }
    ta.remove();
  }
  toast(ok ? `Copied ${what}` : `Could not copy ${what}`);
}

function linkTo(hash) { return location.origin + location.pathname + hash; }

function renderError(box, err, actions) {
  box.replaceChildren();
  box.append(el('p', {}, el('strong', { text: capital(err.message || 'Something went wrong') }),
    err.detail ? el('span', { class: 'detail', text: ' — ' + err.detail }) : null));
  if (err.hint) box.append(el('p', { class: 'hint' }, el('span', { class: 'muted', text: 'What to do: ' }), err.hint));
  if (err.code) box.append(el('p', { class: 'code', text: 'code: ' + err.code }));
  if (actions && actions.length) box.append(el('div', { class: 'row' }, ...actions));
  box.hidden = false;
}
function capital(s) { return s ? s[0].toUpperCase() + s.slice(1) : s; }

/* ------------------------------------------------ source validation (mirrors src/audio/source.c) */

const ALL_SITES = ['youtube', 'soundcloud', 'bandcamp'];
const YT_HOSTS = ['youtube.com', 'www.youtube.com', 'm.youtube.com', 'music.youtube.com', 'youtu.be', 'www.youtu.be',
  'youtube-nocookie.com', 'www.youtube-nocookie.com'];
const KNOWN_SCHEMES = ['http', 'https', 'file', 'ftp', 'ftps', 'sftp', 'data', 'javascript', 'vbscript', 'mailto', 'gopher',
  'dict', 'ldap', 'ldaps', 'tftp', 'telnet', 'ws', 'wss', 'rtmp', 'rtsp', 'mms', 'smb', 'blob', 'about', 'jar',
  'view-source', 'chrome', 'scp', 'ssh', 'git', 'irc', 'tel', 'sms'];
const isYtId = (s) => /^[A-Za-z0-9_-]{11}$/.test(s);
const R = (code, message, hint) => ({ ok: false, code, message, hint });

function ipv4Class(parts) {
  const [a, b] = parts;
  if (a === 127) return 'loopback';
  if (a === 0 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) ||
      (a === 100 && b >= 64 && b <= 127) || a >= 224 || (a === 192 && b === 0) || (a === 198 && (b === 18 || b === 19))) return 'private';
  return 'public';
}

// Returns {ok, kind, canonical} or {ok:false, code, message, hint}; the server re-checks everything.
function validateSource(input) {
  const s = input.trim();
  if (!s) return R('url_empty', 'Paste a link to one song', 'or choose an audio file below');
  if (s.length > 2048) return R('url_too_long', 'The link is too long', 'paste a shorter link to one song');
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(s);
  const schemeLike = m && (s.slice(m[0].length, m[0].length + 2) === '//' || KNOWN_SCHEMES.includes(m[1].toLowerCase()));
  if (!schemeLike) {
    if (isYtId(s)) return { ok: true, kind: 'youtube', canonical: 'https://www.youtube.com/watch?v=' + s };
    const host = s.split(/[/?#]/)[0];
    if (host && (host.includes('.') || /^localhost$/i.test(host) || /:\d+$/.test(host) || host.startsWith('['))) return validateUrl('https://' + s);
    return R('url_not_url', 'This is not a link', 'paste a full link such as https://youtu.be/VIDEOID');
  }
  return validateUrl(s);
}

function validateUrl(s) {
  if (/[\s\\]|[^\x21-\x7e]/.test(s)) return R('url_not_url', 'The link contains spaces or unusual characters', 'copy the link again from the address bar');
  const scheme = s.slice(0, s.indexOf(':')).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return R('url_scheme', `Only http and https links are accepted (not ${scheme}:)`, 'paste an https:// link');
  if (!s.slice(scheme.length + 1).startsWith('//')) return R('url_not_url', 'The link is incomplete', 'it should start with https://');
  const rest = s.slice(scheme.length + 3);
  const auth = rest.split(/[/?#]/)[0];
  if (auth.includes('@')) return R('url_credentials', 'Links with a user name or password are not accepted', 'remove the user:password@ part');
  let host = auth, port = '';
  if (auth.startsWith('[')) {
    return R('url_ip_literal', 'Links to IP addresses are not accepted', 'paste a link to a supported site such as youtube.com');
  }
  const ci = auth.indexOf(':');
  if (ci >= 0) { host = auth.slice(0, ci); port = auth.slice(ci + 1); }
  host = host.toLowerCase().replace(/\.$/, '');
  if (!host) return R('url_not_url', 'The link has no site name', 'paste a full link such as https://youtu.be/VIDEOID');
  if (/^[0-9.]+$/.test(host) || /^0x/i.test(host)) {
    const parts = host.split('.').map(Number);
    if (parts.length === 4 && parts.every((p) => p >= 0 && p <= 255)) {
      const c = ipv4Class(parts);
      if (c === 'loopback') return R('url_localhost', 'Links to this machine are not accepted', 'paste a link to a supported site such as youtube.com');
      if (c === 'private') return R('url_private', 'Links to private or internal addresses are not accepted', 'paste a public link to a supported site');
    }
    return R('url_ip_literal', 'Links to IP addresses are not accepted', 'paste a link to a supported site such as youtube.com');
  }
  if (host === 'localhost' || host.endsWith('.localhost') || host === 'localhost.localdomain')
    return R('url_localhost', 'Links to this machine are not accepted', 'paste a link to a supported site such as youtube.com');
  if (!host.includes('.') || /\.(local|internal|lan|home\.arpa|intranet|corp)$/.test(host))
    return R('url_private', 'Links to private or internal addresses are not accepted', 'paste a public link to a supported site');
  if (!/^[a-z0-9.-]+$/.test(host)) return R('url_not_url', 'The site name has unusual characters', 'copy the link again');
  const path = (rest.slice(auth.length).split(/[?#]/)[0]) || '/';
  const q = new URLSearchParams((rest.split('?')[1] || '').split('#')[0]);
  if (/\.(m3u8?|mpd|f4m|ism)$/i.test(path)) return R('url_manifest', 'Stream manifests (.m3u8, .mpd) are not accepted', 'paste the page link of the song instead');
  if (port && port !== '80' && port !== '443') return R('url_not_url', `Unexpected port ${port}`, 'paste the link without a port');
  const segs = path.split('/').filter(Boolean);
  const seg0 = (segs[0] || '').toLowerCase();
  if (YT_HOSTS.includes(host)) {
    if (host.includes('youtu.be')) {
      if (!segs[0]) return R('url_no_video', 'This youtu.be link has no video id', 'paste the link of one song');
      return isYtId(segs[0]) ? ok('youtube', segs[0]) : R('url_no_video', `“${segs[0].slice(0, 40)}” is not an 11-character video id`, 'copy the link again');
    }
    if (!segs.length || seg0 === 'watch') {
      if (q.get('v')) return isYtId(q.get('v')) ? ok('youtube', q.get('v')) : R('url_no_video', `“${q.get('v').slice(0, 40)}” is not an 11-character video id`, 'copy the link again');
      if (seg0 === 'watch' && q.get('list')) return R('url_playlist', 'Playlists are not accepted', 'open one song of the playlist and paste its link');
      if (!segs.length) return R('url_no_video', 'The YouTube home page is not a video', 'open one song and paste its link');
      return R('url_no_video', 'This watch link has no video (v=…)', 'copy the link again');
    }
    if (['shorts', 'embed', 'live', 'v', 'e'].includes(seg0)) {
      if (!segs[1]) return R('url_no_video', `/${seg0}/ without a video id`, 'paste the link of one song');
      if (segs[1].toLowerCase() === 'videoseries') return R('url_playlist', 'Playlists are not accepted', 'open one song of the playlist and paste its link');
      return isYtId(segs[1]) ? ok('youtube', segs[1]) : R('url_no_video', `“${segs[1].slice(0, 40)}” is not an 11-character video id`, 'copy the link again');
    }
    if (seg0 === 'playlist') return R('url_playlist', 'Playlists are not accepted', 'open one song of the playlist and paste its link');
    if (['results', 'search', 'hashtag'].includes(seg0)) return R('url_search', 'Search pages are not accepted', 'open one song and paste its link');
    if (seg0.startsWith('@') || ['channel', 'c', 'user'].includes(seg0)) return R('url_channel', 'Channel pages are not accepted', 'paste the link of one song');
    return R('url_no_video', 'This YouTube page is not a video', 'paste the link of one song, e.g. https://www.youtube.com/watch?v=VIDEOID');
  }
  if (['soundcloud.com', 'www.soundcloud.com', 'm.soundcloud.com', 'on.soundcloud.com'].includes(host)) {
    if (host === 'on.soundcloud.com') return R('url_no_video', 'Short links are not followed', 'open it and paste the full link');
    if (!segs.length) return R('url_no_video', 'The SoundCloud home page is not a track', 'paste the link of one track');
    if (seg0 === 'search') return R('url_search', 'Search pages are not accepted', 'open one track and paste its link');
    if (segs.length === 1) return R('url_channel', 'Artist pages are not accepted', 'paste the link of one track');
    if (segs[1].toLowerCase() === 'sets') return R('url_playlist', 'SoundCloud sets are playlists and are not accepted', 'open one track and paste its link');
    if (segs.length > 2) return R('url_no_video', 'Unexpected SoundCloud link shape', 'paste soundcloud.com/artist/track');
    return { ok: true, kind: 'soundcloud', canonical: 'https://soundcloud.com/' + segs.join('/').toLowerCase(), note: 'SoundCloud works when the server enables it' };
  }
  if (host === 'bandcamp.com' || host.endsWith('.bandcamp.com')) {
    if (seg0 === 'album') return R('url_playlist', 'Bandcamp albums are not accepted', 'open one track and paste its link');
    if (seg0 !== 'track' || segs.length !== 2) return R('url_no_video', 'Paste the link of one Bandcamp track', 'artist.bandcamp.com/track/…');
    return { ok: true, kind: 'bandcamp', canonical: s, note: 'Bandcamp works when the server enables it' };
  }
  return R('url_site_unsupported', `${host} is not supported`, 'use a YouTube, SoundCloud or Bandcamp link, or upload the audio file');
  function ok(kind, id) { return { ok: true, kind, canonical: 'https://www.youtube.com/watch?v=' + id }; }
}

function showSourceCheck() {
  const msg = $('source-msg');
  const v = $('source').value;
  $('source').removeAttribute('aria-invalid');
  msg.className = 'hint-line';
  if (!v.trim()) { msg.textContent = state.file ? '' : 'YouTube links, youtu.be short links, shorts and 11-character ids work.'; return null; }
  const r = validateSource(v);
  if (r.ok) {
    msg.className = 'hint-line ok';
    msg.textContent = `✓ ${r.kind === 'youtube' ? 'YouTube video' : r.kind} — ${r.canonical}${r.note ? ' (' + r.note + ')' : ''}`;
  } else {
    msg.className = 'hint-line bad';
    $('source').setAttribute('aria-invalid', 'true');
    msg.textContent = `${r.message} — ${r.hint}.`;
  }
  return r;
}

/* ---------------------------------------------------------------- router */

function route() {
  const h = location.hash || '#/create';
  const parts = h.replace(/^#\/?/, '').split('/');
  let view = parts[0] || 'create';
  const id = parseInt(parts[1], 10);
  if (!['create', 'job', 'image', 'gallery', 'batch', 'settings', 'help'].includes(view)) view = 'create';
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-' + view;
  const navView = view === 'job' ? 'create' : view === 'image' ? 'gallery' : view;
  for (const a of document.querySelectorAll('[data-view]')) {
    if (a.dataset.view === navView) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (view !== 'job') stopJob();
  if (view !== 'batch') clearTimeout(state.batchTimer);
  state.view = view;
  const titles = { create: 'Create', job: 'Job', image: 'Image', gallery: 'Gallery', batch: 'Batch', settings: 'Settings', help: 'Help' };
  document.title = `${titles[view]} · Mus2Pic`;
  if (view === 'create') loadRecent();
  else if (view === 'job' && id > 0) openJob(id);
  else if (view === 'image' && id > 0) openImage(id);
  else if (view === 'gallery') loadGallery(false);
  else if (view === 'batch' && state.batch) pollBatch();
  else if (view === 'help') loadPerf();
  window.scrollTo(0, 0);
}

/* ---------------------------------------------------------------- create */

function buildStyleGallery() {
  const g = $('style-gallery');
  g.replaceChildren();
  for (const p of state.presets) {
    const card = el('button', { type: 'button', class: 'style-card', role: 'radio', 'aria-checked': String(p.name === state.style),
      'data-style': p.name, title: `${p.name}: ${p.description}`, tabindex: p.name === state.style ? '0' : '-1',
      onclick: () => selectStyle(p.name, true) },
    el('img', { src: `presets/${p.name}.png`, alt: '', loading: 'lazy', width: '160', height: '160' }),
    el('span', { text: p.name.replace(/-/g, ' ') }));
    g.append(card);
  }
  g.addEventListener('keydown', (e) => {
    const cards = [...g.querySelectorAll('.style-card')];
    const i = cards.indexOf(document.activeElement);
    if (i < 0) return;
    const cols = Math.max(1, Math.round(g.clientWidth / cards[0].clientWidth));
    const d = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
    if (d) { e.preventDefault(); e.stopPropagation(); const n = cards[clamp(i + d, 0, cards.length - 1)]; selectStyle(n.dataset.style, true); n.focus(); }
  });
  for (const sel of [$('f-style'), $('batch-style'), $('s-style')]) {
    const keep = sel.id === 'batch-style' ? [] : [...sel.options].filter((o) => o.value === '');
    sel.replaceChildren(...keep, ...state.presets.map((p) => el('option', { value: p.name, text: p.name })));
  }
}

function selectStyle(name, user) {
  state.style = name;
  for (const c of document.querySelectorAll('.style-card')) {
    const on = c.dataset.style === name;
    c.setAttribute('aria-checked', String(on)); c.tabIndex = on ? 0 : -1;
  }
  if (user) $('batch-style').value = name;
  updatePreview();
}

function setFile(f) {
  state.file = f;
  const d = $('drop');
  if (f) {
    $('drop-label').textContent = f.name;
    $('drop-help').textContent = `${(f.size / 1048576).toFixed(1)} MB · ready — press Make posters`;
    d.classList.add('has-file');
    $('file-clear').hidden = false;
  } else {
    $('drop-label').textContent = 'Drop an audio file';
    $('drop-help').innerHTML = 'or <u>choose one</u> — wav, flac, mp3, ogg, opus, m4a, webm';
    d.classList.remove('has-file');
    $('file-clear').hidden = true;
    $('file').value = '';
  }
  showSourceCheck();
}

function wireDrop(zone, input, onFiles) {
  zone.addEventListener('click', (e) => { if (e.target.closest('.icon-btn')) return; input.click(); });
  zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault(); zone.classList.remove('over');
    if (e.dataTransfer && e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
  });
  input.addEventListener('change', () => { if (input.files.length) onFiles([...input.files]); });
}

function jobOptions() {
  const o = {};
  const style = state.style; if (style) o.style = style;
  const v = $('opt-variations').value; if (v) o.variations = Number(v);
  const st = $('opt-steps').value; if (st) o.steps = Number(st);
  const size = $('opt-size').value; if (size) o.size = size; /* '' → the renderer's own size (sonic 1024, lcm 512) */
  const seed = $('opt-seed').value.trim(); if (seed) o.seed = Number(seed);
  o.renderer = $('opt-renderer').value;
  const t = $('opt-template').value.trim(); if (t) o.template = t;
  return o;
}

async function submitJob(body, file) {
  if (file) {
    const fd = new FormData();
    fd.append('file', file, file.name);
    for (const [k, v] of Object.entries(body)) fd.append(k, String(v));
    return api('/api/jobs', { method: 'POST', form: fd });
  }
  return api('/api/jobs', { method: 'POST', json: body });
}

async function onCreate(e) {
  e.preventDefault();
  const box = $('create-error');
  box.hidden = true;
  const opts = jobOptions();
  let file = state.file;
  if (!file) {
    const r = showSourceCheck();
    if (!r) { renderError(box, { code: 'url_empty', message: 'no source given', hint: 'paste a YouTube link or choose an audio file' }); $('source').focus(); return; }
    if (!r.ok) { renderError(box, r); $('source').focus(); return; }
    opts.source = $('source').value.trim();
  }
  const btn = $('submit');
  btn.disabled = true;
  try {
    const job = await submitJob(opts, file);
    state.pendingFile = file || null;
    rememberJob(job.id);
    location.hash = `#/job/${job.id}`;
  } catch (err) {
    renderError(box, err, [el('button', { class: 'btn', type: 'button', text: 'Retry', title: 'Send the request again', onclick: () => $('create-form').requestSubmit() })]);
  } finally { btn.disabled = false; }
}

function rememberJob(id) {
  try {
    const ids = JSON.parse(localStorage.getItem('m2p-recent') || '[]').filter((x) => x !== id);
    ids.unshift(id); localStorage.setItem('m2p-recent', JSON.stringify(ids.slice(0, 12)));
  } catch (e) { /* private mode */ }
}

async function loadRecent() {
  const box = $('recent');
  try {
    const r = await api('/api/jobs?limit=8');
    box.replaceChildren();
    for (const j of r.jobs) {
      const img = j.images && j.images[0];
      box.append(el('a', { href: `#/job/${j.id}`, title: `Open job ${j.id} (${j.status})` },
        img ? el('img', { src: img.thumb_url, alt: `${j.style || ''} poster of ${j.source || 'a song'}`, loading: 'lazy' })
          : el('div', { class: 'skeleton', style: 'aspect-ratio:1;border-radius:10px' }),
        el('span', { class: 'cap', text: `${j.source || 'song'} · ${j.status}` })));
    }
    $('recent-h').parentElement.hidden = r.jobs.length === 0;
  } catch (e) { box.replaceChildren(); }
}

function fragmentsByVar() {
  const m = {};
  for (const f of (state.lastFragments || [])) m[f.variable] = f.text;
  return m;
}

function updatePreview() {
  const p = state.presets.find((x) => x.name === state.style);
  const tpl = $('opt-template').value.trim() || (p ? p.template : '');
  const fr = fragmentsByVar();
  const text = tpl.replace(/\{\{/g, '\u0001').replace(/\}\}/g, '\u0002')
    .replace(/\{([a-z_]+)\}/g, (m, v) => fr[v] || (v === 'title' ? 'the song' : `[${v}]`))
    .replace(/\u0001/g, '{').replace(/\u0002/g, '}');
  $('tpl-preview').textContent = text;
  const bad = [...tpl.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1]).filter((v) => !VARIABLES.some(([n]) => n === v));
  const area = $('opt-template');
  $('tpl-preview').classList.toggle('bad', bad.length > 0 && !!$('opt-template').value.trim());
  if (bad.length && $('opt-template').value.trim()) {
    area.setAttribute('aria-invalid', 'true');
    const near = VARIABLES.map(([n]) => n).find((n) => n[0] === (bad[0] || ' ')[0]);
    $('tpl-preview').textContent = `unknown variable {${bad[0]}}` + (near ? `; did you mean {${near}}?` : '');
  } else area.removeAttribute('aria-invalid');
}

function buildTemplateEditor() {
  const chips = $('var-chips');
  const fr = fragmentsByVar();
  chips.replaceChildren(...VARIABLES.map(([n, from]) => el('button', { type: 'button', class: 'chip',
    title: `Insert {${n}} — from ${from}${fr[n] ? '; last song: “' + fr[n] + '”' : ''}`,
    onclick: () => insertAtCursor($('opt-template'), `{${n}}`) }, `{${n}}`)));
  const sug = $('suggestions');
  sug.replaceChildren();
  if (state.lastFragments && state.lastFragments.length) {
    sug.append(el('span', { class: 'muted small', text: 'From the last song’s features:' }));
    for (const f of state.lastFragments.slice(0, 8)) {
      sug.append(el('button', { type: 'button', class: 'chip', title: `${f.feature} → ${f.reason}. Click to add it as plain words`,
        onclick: () => insertAtCursor($('opt-template'), (($('opt-template').value.trim() ? ', ' : '')) + f.text) }, f.text));
    }
  }
}

function insertAtCursor(area, text) {
  const a = area.selectionStart ?? area.value.length;
  const b = area.selectionEnd ?? area.value.length;
  area.value = area.value.slice(0, a) + text + area.value.slice(b);
  area.focus(); area.selectionStart = area.selectionEnd = a + text.length;
  updatePreview();
}

/* ---------------------------------------------------------------- job */

function stopJob() {
  state.openToken = (state.openToken || 0) + 1;
  const ws = state.ws;
  if (ws) {
    ws.onclose = null; ws.onmessage = null; ws.onerror = null;
    // closing a socket still connecting makes the browser log an error: close it once open
    if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(); else ws.close();
    state.ws = null;
  }
  clearInterval(state.jobTimer);
  state.wsJob = 0;
}

function openJob(id) {
  stopJob();
  state.job = null; state.lastSeq = 0; state.jobId = id;
  state.stepInfo = {}; state.imagesDone = new Set(); state.trackShown = 0; state.preview = null;
  $('job-title').textContent = 'Job ' + id;
  $('job-eyebrow').textContent = `Job ${id}`;
  $('job-sub').textContent = '';
  // nothing of the job shown before (status, bar, ETA) until this one's snapshot arrives
  $('job-status').textContent = 'loading…'; $('job-status').className = 'pill';
  $('job-bar').style.width = '0%'; $('job-eta').textContent = ''; $('job-elapsed').textContent = '';
  $('job-cancel').hidden = true;
  $('job-error').hidden = true;
  $('job-images').replaceChildren();
  $('findings').replaceChildren();
  $('log').replaceChildren();
  $('why').replaceChildren();
  $('job-prompt').textContent = 'The prompt appears once the song is analysed.';
  $('job-copy-prompt').disabled = true;
  $('job-tools').hidden = true;
  $('track-meta').replaceChildren(el('span', { class: 'skeleton skeleton-line' }));
  $('audio').removeAttribute('src');
  drawWave(null);
  renderSteps();
  // ask once over HTTP first: an unknown id gets its error instead of a socket retried forever
  const token = state.openToken;
  api(`/api/jobs/${id}`).then(() => {
    if (token === state.openToken) connectJob(id);
  }, (err) => {
    if (token !== state.openToken) return;
    $('job-title').textContent = err.status === 404 ? `No job ${id}` : `Job ${id}`;
    $('job-cancel').hidden = true;
    renderError($('job-error'), err, [el('a', { class: 'btn', href: '#/create', text: 'Make new posters', title: 'Back to Create' })]);
  });
  state.jobTimer = setInterval(tickJob, 250);
}

function connectJob(id) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws/jobs/${id}?since=${state.lastSeq}`);
  state.ws = ws; state.wsJob = id;
  ws.onmessage = (m) => { let ev; try { ev = JSON.parse(m.data); } catch (e) { return; } onJobEvent(ev); };
  ws.onclose = () => {
    if (state.wsJob !== id) return;
    if (state.job && TERMINAL.has(state.job.status)) return;
    setTimeout(() => { if (state.wsJob === id) connectJob(id); }, 1000);
  };
  ws.onerror = () => { /* onclose reconnects */ };
}

function logEvent(ev) {
  const at = ev.at ? new Date(ev.at * 1000).toLocaleTimeString() : '';
  let text = ev.type;
  if (ev.type === 'step') text = `step ${ev.index}/${ev.of}: ${ev.step}`;
  else if (ev.type === 'progress') text = `${ev.step} ${Math.round((ev.fraction || 0) * 100)}% ${ev.message || ''}`;
  else if (ev.type === 'finding') text = `${ev.step}: ${ev.text}`;
  else if (ev.type === 'preview') text = `preview: step ${ev.step}/${ev.steps}`;
  else if (ev.type === 'state') {
    text = `state: ${ev.status}${ev.stage ? ' (' + ev.stage + ')' : ''}${ev.error ? ' — ' + ev.error.code : ''}`;
    if (ev.waiting_for) text += ` — waiting for a ${ev.waiting_for}`;
  }
  const log = $('log');
  log.append(el('li', { text: `${at} #${ev.seq} ${text}` }));
  while (log.children.length > 400) log.firstChild.remove();
  log.scrollTop = log.scrollHeight;
}

function onJobEvent(ev) {
  if (ev.type === 'snapshot') {
    state.lastSeq = ev.seq || 0;
    setJob(ev.job);
    return;
  }
  if (ev.seq && ev.seq <= state.lastSeq) return;
  state.lastSeq = ev.seq || state.lastSeq;
  logEvent(ev);
  const j = state.job;
  if (!j) return;
  j.progress = j.progress || { steps: {}, findings: [] };
  const p = j.progress;
  p.steps = p.steps || {};
  if (ev.type === 'step') {
    for (const s of STEPS) {
      if (s === ev.step) break;
      if (p.steps[s] && p.steps[s].state === 'running') p.steps[s].state = 'done';
    }
    p.steps[ev.step] = Object.assign(p.steps[ev.step] || {}, { state: 'running' });
    state.stepInfo[ev.step] = { started: performance.now(), fraction: 0, message: '' };
    p.step = ev.step; p.step_index = ev.index; p.step_count = ev.of;
    if (j.status !== 'running') { j.status = 'running'; renderStatus(); }
    renderSteps();
  } else if (ev.type === 'progress') {
    state.stepInfo[ev.step] = Object.assign(state.stepInfo[ev.step] || { started: performance.now() }, { fraction: ev.fraction || 0, message: ev.message || '' });
    p.fraction = ev.fraction;
    renderSteps();
    scheduleRefresh();
  } else if (ev.type === 'finding') {
    p.findings = p.findings || [];
    p.findings.push(ev);
    addFinding(ev);
    if (ev.key === 'image' && ev.index !== undefined) markSaved(ev.index);
    if (ev.key === 'prompt' || ev.key === 'title') scheduleRefresh(true);
  } else if (ev.type === 'state') {
    j.status = ev.status;
    if (ev.attempt) j.attempts = ev.attempt;
    if (ev.stage) j.stage = ev.stage;
    if (ev.status === 'running' || ev.retried) { j.error = null; j.not_before = 0; }
    if (ev.error) j.error = ev.error;
    if (ev.status === 'queued' && ev.retry_at) j.not_before = ev.retry_at;
    if (ev.images) j.images = ev.images;
    renderStatus();
    renderSteps();
    renderImages();
    if (ev.status === 'queued' && ev.retried) { openJob(j.id); return; }
    scheduleRefresh(true);
  } else if (ev.type === 'preview') {
    notePreview(ev);
  } else if (ev.type === 'cancel_requested') {
    $('job-status').textContent = 'cancelling…';
  }
}

// Live previews (lcm jobs with TAESD): the latest one is shown in the placeholder of the image it
// belongs to, at the placeholder's size (no layout jump), until the final images replace it.
function notePreview(pv) {
  if (!pv || !pv.step) return;
  const cur = state.preview;
  const idx = pv.index || 0;
  if (cur && ((cur.index || 0) > idx || ((cur.index || 0) === idx && cur.step > pv.step))) return; // older
  state.preview = pv;
  showPreview();
}

function showPreview() {
  const j = state.job; const pv = state.preview;
  if (!j || !pv || (j.images && j.images.length) || TERMINAL.has(j.status)) return;
  const idx = pv.index || 0;
  const ph = $('job-images').querySelector(`div.poster[data-index="${idx}"]`);
  if (!ph || ph.dataset.previewStep === `${pv.step}`) return;
  // an earlier image's preview gives way to the next image's
  for (const other of $('job-images').querySelectorAll('div.poster.previewing')) {
    if (other !== ph) resetPlaceholder(other);
  }
  const n = (j.spec && j.spec.variations) || 1;
  const label = `preview · step ${pv.step} of ${pv.steps}`;
  const url = pv.url || `/api/jobs/${j.id}/preview?i=${idx}&step=${pv.step}`;
  let img = ph.querySelector('img.preview-img');
  let cap = ph.querySelector('.preview-label');
  if (!img) {
    ph.classList.remove('skeleton');
    ph.classList.add('previewing');
    ph.removeAttribute('role'); ph.removeAttribute('aria-label');
    img = el('img', { class: 'preview-img', decoding: 'async' });
    // a first frame already gone (204: the render ended) shows nothing rather than a broken image
    img.onerror = () => { img.style.visibility = 'hidden'; };
    img.onload = () => { img.style.visibility = ''; };
    cap = el('span', { class: 'preview-label', 'aria-hidden': 'true' });
    ph.append(img, cap);
  }
  ph.dataset.previewStep = `${pv.step}`;
  const alt = `Live preview of poster ${idx + 1} of ${n}, ${label}: a rough draft the final image replaces`;
  const apply = () => { img.src = url; img.alt = alt; cap.textContent = label; };
  if (!img.getAttribute('src')) { apply(); return; }
  // later frames load before they are swapped in (picture, alt and label together), so the previous
  // one stays until the next is ready; a preview gone meanwhile (204: the render ended) keeps the last
  const next = new Image();
  next.onload = () => { if (img.isConnected && ph.dataset.previewStep === `${pv.step}`) apply(); };
  next.src = url;
}

function resetPlaceholder(ph) {
  const n = (state.job && state.job.spec && state.job.spec.variations) || 1;
  ph.replaceChildren();
  ph.classList.remove('previewing');
  ph.classList.add('skeleton');
  delete ph.dataset.previewStep;
  ph.setAttribute('role', 'img');
  ph.setAttribute('aria-label', `poster ${Number(ph.dataset.index) + 1} of ${n}, being made`);
}

function scheduleRefresh(now) {
  const wait = now ? 0 : Math.max(0, state.refreshAt + 900 - Date.now());
  if (state.refreshPending) return;
  state.refreshPending = true;
  setTimeout(async () => {
    state.refreshPending = false;
    state.refreshAt = Date.now();
    const id = state.jobId;
    try {
      const j = await api(`/api/jobs/${id}`);
      if (state.jobId === id && state.view === 'job') setJob(j, true);
    } catch (e) { /* the socket keeps going */ }
  }, wait);
}

function setJob(j, fromPoll) {
  const prev = state.job;
  state.job = j;
  state.jobReceivedAt = performance.now();
  const spec = j.spec || {};
  const title = (j.result && j.result.title) || spec.upload_name || j.source || `Job ${j.id}`;
  $('job-title').textContent = title;
  $('job-sub').textContent = [spec.style, `${spec.variations || ''} × ${spec.width || ''}×${spec.height || ''}`.replace(/^ × ×$/, ''),
    spec.seed !== undefined ? `seed ${spec.seed}` : '', fmtDate(j.created_at)].filter(Boolean).join(' · ');
  if (!fromPoll || !prev) {
    $('findings').replaceChildren();
    for (const f of (j.progress && j.progress.findings) || []) addFinding(f);
  }
  if (j.progress && j.progress.preview) notePreview(j.progress.preview);
  renderStatus();
  renderSteps();
  renderImages();
  renderWhy();
  renderTrack();
}

function renderStatus() {
  const j = state.job; if (!j) return;
  const pill = $('job-status');
  if (j.status === 'queued' && j.stage === 'render') pill.textContent = 'analysed · waiting for a render worker';
  else pill.textContent = j.status === 'queued' && j.queue_position > 0 ? `queued · #${j.queue_position}` : j.status;
  pill.className = 'pill ' + j.status;
  const running = !TERMINAL.has(j.status);
  $('job-cancel').hidden = !running;
  $('job-tools').hidden = j.status !== 'succeeded';
  $('job-zip').href = `/api/export.zip?ids=${(j.images || []).map((i) => i.id).join(',')}`;
  const box = $('job-error');
  if (j.error && (j.status === 'failed' || j.status === 'partial' || j.status === 'queued')) {
    const err = Object.assign({}, j.error);
    const actions = [];
    if (j.status === 'queued' && j.not_before) {
      err.message = `Attempt ${j.attempts || ''} failed: ${j.error.message}`;
      err.hint = `${j.error.hint || ''} — retrying automatically`.replace(/^ — /, '');
    } else {
      actions.push(el('button', { class: 'btn primary', type: 'button', id: 'job-retry', text: 'Retry', title: 'Run this job again', onclick: retryJob }));
      actions.push(el('button', { class: 'btn', type: 'button', text: 'Change the input', title: 'Back to Create with these settings', onclick: () => editJobInput(j) }));
    }
    renderError(box, err, actions);
  } else if (j.status === 'cancelled') {
    renderError(box, { message: 'Cancelled', hint: 'retry to run it again from the start', code: '' },
      [el('button', { class: 'btn primary', type: 'button', id: 'job-retry', text: 'Retry', title: 'Run this job again', onclick: retryJob })]);
    box.querySelector('strong').style.color = 'var(--warn)';
  } else box.hidden = true;
  if (TERMINAL.has(j.status) && !j.result) {
    $('job-prompt').textContent = 'No prompt: the job stopped before the song was analysed.';
    if (!state.trackShown) $('track-meta').replaceChildren(el('span', { class: 'muted', text: 'No audio to play for this job.' }));
  }
}

function editJobInput(j) {
  const spec = j.spec || {};
  if (spec.source) $('source').value = spec.source;
  if (spec.style) selectStyle(spec.style);
  if (spec.variations) $('opt-variations').value = spec.variations;
  if (spec.steps) $('opt-steps').value = spec.steps;
  location.hash = '#/create';
  setTimeout(() => (spec.source ? $('source') : $('drop')).focus(), 50);
}

async function retryJob() {
  const id = state.jobId;
  try {
    await api(`/api/jobs/${id}/retry`, { method: 'POST' });
    toast('Retrying');
    openJob(id);
  } catch (err) { renderError($('job-error'), err); }
}

async function cancelJob() {
  const j = state.job;
  if (!j || TERMINAL.has(j.status)) return;
  $('job-cancel').disabled = true;
  try { await api(`/api/jobs/${j.id}/cancel`, { method: 'POST' }); toast('Cancelling…'); scheduleRefresh(true); }
  catch (err) { renderError($('job-error'), err); }
  finally { $('job-cancel').disabled = false; }
}

function renderSteps() {
  const j = state.job;
  const ps = (j && j.progress && j.progress.steps) || {};
  const ol = $('steps');
  if (!ol.children.length) {
    for (const s of STEPS) {
      ol.append(el('li', { 'data-step': s, class: 'pending' }, el('span', { class: 'dot', 'aria-hidden': 'true' }),
        el('span', { class: 'name', text: STEP_LABEL[s] }), el('span', { class: 't' }),
        el('span', { class: 'sbar', 'aria-hidden': 'true' }, el('i')), el('span', { class: 'msg' })));
    }
  }
  const failed = j && j.status === 'failed';
  for (const li of ol.children) {
    const s = li.dataset.step;
    const info = ps[s] || {};
    let st = info.state || 'pending';
    if (j && j.status === 'succeeded') st = 'done';
    if (failed && st === 'running') st = 'failed';
    if (j && (j.status === 'cancelled') && st === 'running') st = 'pending';
    li.className = st;
    li.setAttribute('aria-label', `${STEP_LABEL[s]}: ${st}`);
    const live = state.stepInfo[s];
    let secs = info.elapsed_s;
    if (st === 'running' && live) secs = (performance.now() - live.started) / 1000;
    li.querySelector('.t').textContent = st === 'pending' ? '' : fmtSecs(secs || 0);
    const frac = st === 'done' ? 1 : st === 'running' && live ? live.fraction : 0;
    li.querySelector('.sbar i').style.width = `${Math.round(frac * 100)}%`;
    li.querySelector('.msg').textContent = st === 'running' && live ? live.message : '';
  }
}

function tickJob() {
  const j = state.job; if (!j) return;
  const p = j.progress || {};
  const running = !TERMINAL.has(j.status);
  const since = (performance.now() - (state.jobReceivedAt || performance.now())) / 1000;
  const elapsed = (p.elapsed_s || 0) + (running && j.status === 'running' ? since : 0);
  $('job-elapsed').textContent = j.status === 'queued' ? (j.not_before ? `retry in ${fmtSecs(Math.max(0, j.not_before - Date.now() / 1000))}` : 'waiting in the queue')
    : `elapsed ${fmtSecs(elapsed)}`;
  let eta = '';
  if (running && p.eta_s !== null && p.eta_s !== undefined) eta = `about ${fmtSecs(Math.max(0, p.eta_s - since))} left`;
  if (j.status === 'succeeded') eta = 'done';
  $('job-eta').textContent = eta;
  let overall = p.overall || 0;
  if (j.status === 'succeeded') overall = 1;
  else if (running && p.step_index && p.step_count) {
    const cur = state.stepInfo[p.step];
    overall = Math.max(overall, ((p.step_index - 1) + (cur ? cur.fraction : 0)) / p.step_count);
  }
  $('job-bar').style.width = `${Math.round(overall * 100)}%`;
  if (running) renderSteps();
}

function addFinding(f) {
  const li = el('li', { 'data-key': f.key || '', text: f.key === 'title' ? `Song: ${f.text}` : f.text });
  $('findings').append(li);
}

function markSaved(index) {
  state.imagesDone.add(index);
  const ph = $('job-images').querySelector(`[data-index="${index}"]`);
  if (ph) ph.classList.add('saved');
}

function renderImages() {
  const j = state.job; if (!j) return;
  const box = $('job-images');
  const spec = j.spec || {};
  const n = spec.variations || 1;
  const ar = spec.width && spec.height ? `${spec.width}/${spec.height}` : '1';
  const imgs = j.images || [];
  if (imgs.length) {
    if (box.dataset.filled === String(j.id) + ':' + imgs.length) return;
    box.dataset.filled = String(j.id) + ':' + imgs.length;
    box.replaceChildren(...imgs.map((im) => posterCard(im, j)));
    return;
  }
  box.dataset.filled = '';
  if (j.status === 'failed' || j.status === 'cancelled') { box.replaceChildren(); return; }
  if (box.children.length !== n || box.querySelector('figure')) {
    box.replaceChildren();
    for (let i = 0; i < n; i++) {
      box.append(el('div', { class: 'poster skeleton' + (state.imagesDone.has(i) ? ' saved' : ''), 'data-index': String(i),
        style: `--ar:${ar}`, role: 'img', 'aria-label': `poster ${i + 1} of ${n}, being made` }));
    }
  }
  showPreview();
}

function posterCard(im, j) {
  const alt = `${im.style || (j.spec && j.spec.style) || ''} poster ${im.index + 1} (seed ${im.seed})`;
  return el('figure', { class: 'poster', style: `--ar:${im.width}/${im.height}`, 'data-image-id': String(im.id) },
    el('a', { class: 'open', href: `#/image/${im.id}`, title: 'Open this image' },
      el('img', { src: im.thumb_url, srcset: `${im.thumb_url} 384w, ${im.url} ${im.width}w`,
        sizes: '(max-width: 640px) 50vw, 300px', alt, loading: 'lazy', decoding: 'async' })),
    el('div', { class: 'acts' },
      el('a', { class: 'btn', href: im.url, download: `mus2pic-${im.id}.png`, title: 'Download the PNG' }, 'Download'),
      el('button', { class: 'btn', type: 'button', title: 'Copy a link to this image', onclick: () => copyText(linkTo(`#/image/${im.id}`), 'link') }, 'Link')));
}

function renderWhy() {
  const j = state.job;
  const pr = j && j.result && j.result.prompt;
  const ul = $('why');
  if (!pr) {
    const f = j && j.progress && (j.progress.findings || []).find((x) => x.key === 'prompt');
    if (f) { $('job-prompt').textContent = f.text; $('job-copy-prompt').disabled = false; }
    return;
  }
  $('job-prompt').textContent = pr.positive;
  $('job-copy-prompt').disabled = false;
  state.lastFragments = pr.fragments || [];
  buildTemplateEditor();
  ul.replaceChildren(...(pr.fragments || []).map((f) => el('li', { class: f.kept ? '' : 'dropped', title: f.kept ? '' : 'left out to fit the token limit' },
    el('span', { class: 'var', text: `{${f.variable}}` }), el('span', { class: 'frag', text: f.text }),
    el('span', { class: 'because', text: `${f.feature} → ${f.reason}` }))));
  if (pr.negative) ul.append(el('li', {}, el('span', { class: 'var', text: 'negative' }), el('span', { class: 'frag', text: pr.negative }),
    el('span', { class: 'because', text: `from the ${pr.style} style` })));
}

async function renderTrack() {
  const j = state.job;
  const tid = j && (j.track_id || (j.result && j.result.track_id));
  if (!tid || state.trackShown === tid) return;
  // only once the audio decoded (an undecodable upload has a track but nothing to play)
  const dec = j.progress && j.progress.steps && j.progress.steps.decode;
  if (!j.result && !(dec && dec.state === 'done')) return;
  state.trackShown = tid;
  const a = j.result && j.result.analysis;
  const meta = $('track-meta');
  try {
    const t = await api(`/api/tracks/${tid}`);
    const dur = t.duration_s || (a && a.duration_s) || (j.result && j.result.duration_s) || 0;
    const bits = [dur ? fmtDur(dur) : '', a ? `${Math.round(a.tempo_bpm)} BPM` : '', a ? `${a.key} ${a.mode}` : '',
      t.uploader || '', t.kind].filter(Boolean);
    meta.replaceChildren(el('strong', { text: t.title || (j.spec && j.spec.upload_name) || 'Song' }), el('span', { text: bits.join(' · ') }));
    $('audio').src = `/api/tracks/${tid}/audio`;
    const pk = await api(`/api/tracks/${tid}/peaks`);
    state.peaks = pk;
    drawWave(pk);
  } catch (e) {
    meta.replaceChildren(el('span', { class: 'muted', text: 'The song is not available: ' + e.message }));
  }
}

function drawWave(pk) {
  const c = $('wave');
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || 300;
  c.width = Math.round(w * dpr); c.height = Math.round(64 * dpr);
  const g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  if (!pk || !pk.peaks || !pk.peaks.length) return;
  const css = getComputedStyle(document.documentElement);
  const audio = $('audio');
  const total = pk.peaks.length * pk.seconds_per_peak;
  const played = audio.duration ? audio.currentTime / audio.duration : (audio.currentTime / total || 0);
  const bars = Math.max(20, Math.floor(w / 3));
  const per = pk.peaks.length / bars;
  let max = 0.001;
  for (const v of pk.peaks) max = Math.max(max, v);
  for (let i = 0; i < bars; i++) {
    let v = 0;
    for (let k = Math.floor(i * per); k < Math.floor((i + 1) * per) && k < pk.peaks.length; k++) v = Math.max(v, pk.peaks[k]);
    const h = Math.max(2, (v / max) * (c.height - 6));
    g.fillStyle = i / bars <= played ? css.getPropertyValue('--accent2').trim() : css.getPropertyValue('--accent').trim();
    g.globalAlpha = i / bars <= played ? 1 : 0.55;
    g.fillRect(i * 3 * dpr, (c.height - h) / 2, 2 * dpr, h);
  }
  g.globalAlpha = 1;
}

async function regenerate() {
  const j = state.job; if (!j) return;
  const spec = Object.assign({}, j.spec);
  const body = {};
  for (const k of ['style', 'variations', 'steps', 'renderer', 'template', 'guidance', 'layout', 'per_section']) if (spec[k] !== undefined) body[k] = spec[k];
  if (spec.width && spec.height) body.size = `${spec.width}x${spec.height}`;
  body.seed = Math.floor(Math.random() * 4294967295);
  $('job-regen').disabled = true;
  try {
    let file = null;
    if (!spec.source) {
      const tid = j.track_id || (j.result && j.result.track_id);
      const r = await fetch(`/api/tracks/${tid}/audio`);
      if (!r.ok) throw new ApiError(r.status, null);
      file = new File([await r.blob()], spec.upload_name || 'song.wav');
    } else body.source = spec.source;
    const nj = await submitJob(body, file);
    rememberJob(nj.id);
    location.hash = `#/job/${nj.id}`;
  } catch (err) { renderError($('job-error'), err); }
  finally { $('job-regen').disabled = false; }
}

/* ---------------------------------------------------------------- image view */

async function openImage(id) {
  let im;
  try { im = await api(`/api/images/${id}/meta`); } catch (err) {
    $('img-title').textContent = 'Image not found';
    $('img-meta').replaceChildren(); $('img-prompt').textContent = err.message; $('img-full').removeAttribute('src');
    return;
  }
  state.image = im;
  const img = $('img-full');
  img.src = `/api/images/${im.id}`;
  img.alt = `${im.style} poster: ${im.prompt || ''}`.slice(0, 300);
  img.width = im.width; img.height = im.height;
  const md = im.metadata || {};
  $('img-title').textContent = md.title || im.source || `Image ${im.id}`;
  const rows = [['Style', im.style], ['Seed', im.seed], ['Size', `${im.width} × ${im.height}`], ['Renderer', `${im.renderer} (${im.model || ''})`],
    ['Tempo', im.tempo ? `${Math.round(im.tempo)} BPM` : ''], ['Key', im.key ? `${im.key} ${im.mode || ''}` : ''],
    ['Source', im.source || ''], ['Made', fmtDate(im.created_at)]];
  $('img-meta').replaceChildren(...rows.filter((r) => r[1] !== '' && r[1] !== undefined).flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
  $('img-prompt').textContent = im.prompt || '';
  $('img-download').href = `/api/images/${im.id}`;
  $('img-download').setAttribute('download', `mus2pic-${im.id}.png`);
  $('img-export').href = `/api/export.zip?ids=${im.id}`;
  $('img-job').href = `#/job/${im.job_id}`;
  $('img-share').hidden = !navigator.share;
  if (!state.imageList.includes(im.id)) {
    try {
      const r = await api('/api/images?limit=200' + filterQuery());
      state.imageList = r.images.map((x) => x.id);
    } catch (e) { state.imageList = [im.id]; }
  }
  const i = state.imageList.indexOf(im.id);
  $('img-prev').disabled = i <= 0;
  $('img-next').disabled = i < 0 || i >= state.imageList.length - 1;
}

function stepImage(d) {
  if (!state.image) return;
  const i = state.imageList.indexOf(state.image.id);
  const n = state.imageList[i + d];
  if (i >= 0 && n) location.replace(`#/image/${n}`);
}

function saveShown() {
  let a = null;
  if (state.view === 'image' && state.image) a = $('img-download');
  else if (state.view === 'job') a = $('job-images').querySelector('a[download]');
  if (a) { a.click(); toast('Saving the image'); return true; }
  return false;
}

/* ---------------------------------------------------------------- gallery */

function filterQuery() {
  const q = new URLSearchParams();
  const add = (k, v) => { if (v !== '' && v !== null && v !== undefined) q.set(k, v); };
  add('q', $('f-q').value.trim()); add('style', $('f-style').value); add('key', $('f-key').value); add('mode', $('f-mode').value);
  add('tempo_min', $('f-tmin').value); add('tempo_max', $('f-tmax').value); add('source', $('f-source').value.trim());
  if ($('f-from').value) add('from', Math.floor(new Date($('f-from').value + 'T00:00:00').getTime() / 1000));
  if ($('f-to').value) add('to', Math.floor(new Date($('f-to').value + 'T23:59:59').getTime() / 1000));
  const s = q.toString();
  return s ? '&' + s : '';
}

let galleryReq = 0;
async function loadGallery(more) {
  const mine = ++galleryReq;
  const offset = more ? state.gallery.length : 0;
  let r;
  try { r = await api(`/api/images?limit=60&offset=${offset}${filterQuery()}`); } catch (err) {
    $('gallery-count').textContent = err.message; return;
  }
  if (mine !== galleryReq) return;
  state.gallery = more ? state.gallery.concat(r.images) : r.images;
  state.galleryTotal = r.total;
  state.imageList = state.gallery.map((x) => x.id);
  const g = $('gallery');
  if (!more) g.replaceChildren();
  for (const im of r.images) g.append(tile(im));
  $('gallery-count').textContent = `${r.total} image${r.total === 1 ? '' : 's'}`;
  $('gallery-empty').hidden = r.total > 0;
  $('gallery-more').hidden = state.gallery.length >= r.total;
  updateSelbar();
}

function tile(im) {
  const selected = state.selected.has(im.id);
  const label = `${im.style} · ${im.tempo ? Math.round(im.tempo) + ' BPM' : ''} ${im.key ? im.key + ' ' + (im.mode || '') : ''}`.trim();
  const t = el('figure', { class: 'tile' + (selected ? ' selected' : ''), style: `--ar:${im.width}/${im.height};margin:0`, 'data-image-id': String(im.id) },
    el('a', { href: `#/image/${im.id}`, title: `${label}\n${im.prompt || ''}` },
      el('img', { src: im.thumb_url, alt: `${label} poster of ${im.source || 'a song'}`, loading: 'lazy', decoding: 'async', width: '384', height: String(Math.round(384 * im.height / im.width)) })),
    el('span', { class: 'tag', text: label }),
    el('input', { type: 'checkbox', class: 'sel', checked: selected, 'aria-label': `Select image ${im.id}`, title: 'Select for compare, export or delete',
      onchange: (e) => { if (e.target.checked) state.selected.add(im.id); else state.selected.delete(im.id); t.classList.toggle('selected', e.target.checked); updateSelbar(); } }));
  return t;
}

function updateSelbar() {
  const n = state.selected.size;
  $('selbar').hidden = n === 0;
  $('sel-count').textContent = `${n} selected`;
  $('sel-compare').disabled = n < 2 || n > 4;
  $('sel-compare').title = n >= 2 && n <= 4 ? 'Compare the selected images side by side' : 'Select 2 to 4 images to compare';
  $('sel-zip').href = `/api/export.zip?ids=${[...state.selected].join(',')}`;
}

async function openCompare() {
  const ids = [...state.selected].slice(0, 4);
  const box = $('compare');
  box.style.setProperty('--n', ids.length);
  box.replaceChildren();
  for (const id of ids) {
    let im = state.gallery.find((x) => x.id === id);
    if (!im) { try { im = await api(`/api/images/${id}/meta`); } catch (e) { continue; } }
    box.append(el('figure', { 'data-image-id': String(id) }, el('img', { src: im.url, alt: `${im.style} poster ${id}` }),
      el('figcaption', {}, el('b', { text: `${im.style} · seed ${im.seed}` }), el('br'),
        `${im.tempo ? Math.round(im.tempo) + ' BPM · ' : ''}${im.key || ''} ${im.mode || ''}`, el('br'), (im.prompt || '').length > 160 ? im.prompt.slice(0, 160).replace(/[ ,]+\S*$/, '') + '…' : (im.prompt || ''))));
  }
  openOverlay('overlay-compare');
}

async function deleteSelected() {
  const ids = [...state.selected];
  const jobs = [...new Set(ids.map((id) => (state.gallery.find((x) => x.id === id) || {}).job_id).filter(Boolean))];
  if (!confirm(`Delete ${jobs.length} job${jobs.length === 1 ? '' : 's'} with their images? This cannot be undone.`)) return;
  let failed = 0;
  for (const j of jobs) { try { await api(`/api/jobs/${j}`, { method: 'DELETE' }); } catch (e) { failed++; } }
  state.selected.clear();
  toast(failed ? `${failed} could not be deleted` : 'Deleted');
  loadGallery(false);
}

/* ---------------------------------------------------------------- batch */

function batchLinks() { return $('batch-urls').value.split(/\n/).map((s) => s.trim()).filter(Boolean); }

function checkBatch() {
  const links = batchLinks();
  const bad = links.map((l, i) => [i + 1, validateSource(l)]).filter(([, r]) => !r.ok);
  const msg = $('batch-msg');
  const nf = state.batchFiles.length;
  if (bad.length) { msg.className = 'hint-line bad'; msg.textContent = `Line ${bad[0][0]}: ${bad[0][1].message} — ${bad[0][1].hint}.`; }
  else { msg.className = 'hint-line' + (links.length || nf ? ' ok' : ''); msg.textContent = links.length || nf ? `${links.length || nf} item${(links.length || nf) === 1 ? '' : 's'} ready` : ''; }
  return bad.length === 0;
}

async function startBatch(e) {
  e.preventDefault();
  $('batch-error').hidden = true;
  const links = batchLinks();
  const common = { style: $('batch-style').value, variations: Number($('batch-variations').value || 1) };
  const size = $('opt-size').value || state.settings.size;
  if (size) common.size = size;
  common.renderer = $('opt-renderer').value;
  let r;
  try {
    if (state.batchFiles.length && !links.length) {
      const fd = new FormData();
      for (const f of state.batchFiles) fd.append('file', f, f.name);
      for (const [k, v] of Object.entries(common)) fd.append(k, String(v));
      r = await api('/api/batches', { method: 'POST', form: fd });
    } else {
      if (!checkBatch()) { $('batch-urls').focus(); return; }
      if (!links.length) { renderError($('batch-error'), { code: 'url_empty', message: 'Nothing to do', hint: 'paste links or drop files' }); return; }
      r = await api('/api/batches', { method: 'POST', json: Object.assign({ sources: links }, common) });
    }
  } catch (err) {
    renderError($('batch-error'), err, [el('button', { class: 'btn', type: 'button', text: 'Retry', title: 'Send the batch again', onclick: () => $('batch-form').requestSubmit() })]);
    return;
  }
  state.batch = { id: r.id, names: state.batchFiles.length && !links.length ? state.batchFiles.map((f) => f.name) : links };
  state.batchFiles = []; $('batch-drop-label').textContent = 'Drop many audio files';
  $('batch-items').replaceChildren();
  pollBatch();
}

async function pollBatch() {
  clearTimeout(state.batchTimer);
  const b = state.batch; if (!b) return;
  let r;
  try { r = await api(`/api/batches/${b.id}`); } catch (err) { renderError($('batch-error'), err); return; }
  $('batch-queue').hidden = false;
  const ol = $('batch-items');
  const jobs = await Promise.all(r.jobs.map((j) => api(`/api/jobs/${j.id}`).catch(() => j)));
  jobs.forEach((j, i) => {
    let li = ol.querySelector(`[data-job="${j.id}"]`);
    if (!li) {
      li = el('li', { 'data-job': String(j.id) }, el('img', { class: 'thumb', alt: '' }),
        el('a', { class: 'name', href: `#/job/${j.id}`, title: 'Open this job' }), el('span', { class: 'pill' }),
        el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': `item ${i + 1} progress` }, el('div', { class: 'bar-fill' })));
      ol.append(li);
    }
    const p = j.progress || {};
    const frac = j.status === 'succeeded' ? 1 : (p.overall || 0);
    li.querySelector('.name').textContent = `${i + 1}. ${(j.result && j.result.title) || b.names[i] || j.source || 'song'}`;
    const pill = li.querySelector('.pill');
    pill.textContent = j.status === 'running' && p.step ? `${p.step} ${Math.round(frac * 100)}%` : j.status;
    pill.className = 'pill ' + j.status;
    li.dataset.status = j.status;
    li.querySelector('.bar-fill').style.width = `${Math.round(frac * 100)}%`;
    li.querySelector('.bar').setAttribute('aria-valuenow', String(Math.round(frac * 100)));
    const im = j.images && j.images[0];
    if (im && !li.querySelector('.thumb').src) { li.querySelector('.thumb').src = im.thumb_url; li.querySelector('.thumb').alt = `first poster of item ${i + 1}`; }
  });
  $('batch-summary').textContent = `${r.done} of ${r.total} done`;
  const zip = $('batch-zip');
  zip.href = `/api/batches/${b.id}/export.zip`;
  zip.hidden = r.done < r.total;
  if (r.done < r.total && state.view === 'batch') state.batchTimer = setTimeout(pollBatch, 700);
}

/* ---------------------------------------------------------------- settings */

function applyTheme(t) {
  document.documentElement.dataset.theme = t === 'light' ? 'light' : 'dark';
  document.querySelector('meta[name="theme-color"]').content = t === 'light' ? '#f6f6f9' : '#0f1115';
  if (state.peaks) drawWave(state.peaks);
}

async function loadSettings() {
  try {
    const r = await api('/api/settings');
    state.settings = r.settings || {}; state.serverDefaults = r.server_defaults || {};
  } catch (e) { state.settings = {}; }
  const s = state.settings, d = state.serverDefaults;
  $('s-variations').value = s.variations || d.variations || 4;
  $('s-steps').value = s.steps || d.steps || 4;
  $('s-size').value = s.size || '';
  $('s-renderer').value = s.renderer || '';
  $('s-style').value = s.style || '';
  $('s-theme').value = s.theme || 'dark';
  applyTheme(s.theme);
  $('opt-variations').value = s.variations || d.variations || 4;
  $('opt-steps').value = s.steps || d.steps || 4;
  const size = s.size || (d.width ? `${d.width}x${d.height}` : '');
  if (![...$('opt-size').options].some((o) => o.value === size)) $('opt-size').append(el('option', { value: size, text: size }));
  $('opt-size').value = size;
  $('opt-renderer').value = s.renderer || d.renderer || 'auto';
  selectStyle(s.style || d.style || (state.presets[0] && state.presets[0].name) || '');
}

let settingsTimer = 0;
function saveSettingsSoon() {
  clearTimeout(settingsTimer);
  $('settings-saved').textContent = 'Saving…';
  applyTheme($('s-theme').value);
  settingsTimer = setTimeout(saveSettings, 300);
}

async function saveSettings() {
  const body = {
    variations: Number($('s-variations').value) || null, steps: Number($('s-steps').value) || null,
    size: $('s-size').value || null, renderer: $('s-renderer').value || null, style: $('s-style').value || null,
    theme: $('s-theme').value,
  };
  try {
    const r = await api('/api/settings', { method: 'PUT', json: body });
    state.settings = r.settings || {};
    $('settings-saved').textContent = '✓ Saved';
    $('settings-saved').className = 'ok';
    $('opt-variations').value = body.variations || $('opt-variations').value;
    $('opt-steps').value = body.steps || $('opt-steps').value;
    if (body.size) $('opt-size').value = body.size;
    if (body.renderer) $('opt-renderer').value = body.renderer;
    if (body.style) selectStyle(body.style);
  } catch (err) {
    $('settings-saved').textContent = `Not saved: ${err.message}${err.detail ? ' (' + err.detail + ')' : ''}`;
    $('settings-saved').className = 'bad';
  }
}

/* ---------------------------------------------------------------- help / performance */

function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/(\w+)="([^"]*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

async function loadPerf() {
  let text = '';
  try { const r = await fetch('/metrics'); text = await r.text(); } catch (e) { $('perf').replaceChildren(el('dd', { text: 'metrics unavailable' })); return; }
  const ms = parseMetrics(text);
  const get = (n, l) => { const x = ms.find((m) => m.name === n && Object.entries(l || {}).every(([k, v]) => m.labels[k] === v)); return x ? x.value : undefined; };
  let last = null;
  try { const r = await api('/api/jobs?status=succeeded&limit=1'); last = r.jobs[0]; } catch (e) { /* none */ }
  const res = last && last.result;
  const mem = get('m2p_process_resident_bytes');
  const rows = [
    ['Model', res ? `${res.renderer} · ${res.model}` : 'no job yet'],
    ['Device', res && res.device ? res.device : (res && res.renderer === 'lcm' ? 'CPU (own inference engine)' : 'CPU')],
    ['Workers', `${get('m2p_workers_busy') ?? 0} busy of ${get('m2p_workers') ?? '?'}`],
    ['Queue', `${get('m2p_queue_depth') ?? 0} waiting`],
    ['Jobs done', String(get('m2p_jobs', { status: 'succeeded' }) ?? 0)],
    ['Feature cache hits', `${Math.round((get('m2p_cache_hit_ratio', { cache: 'features' }) || 0) * 100)} % (${get('m2p_cache_hits_total', { cache: 'features' }) ?? 0})`],
    ['Audio cache hits', `${Math.round((get('m2p_cache_hit_ratio', { cache: 'audio' }) || 0) * 100)} % (${get('m2p_cache_hits_total', { cache: 'audio' }) ?? 0})`],
    ['Reused results', String(get('m2p_request_dedup_total') ?? 0)],
    ['Memory in use', mem !== undefined ? `${(mem / 1048576).toFixed(0)} MB` : 'not reported by this server'],
    ['Open live views', String(get('m2p_websockets_open') ?? 0)],
    ['Uptime', fmtSecs(get('m2p_uptime_seconds') || 0)],
  ];
  $('perf').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  const steps = STEPS.map((s) => {
    const sum = get('m2p_step_seconds_sum', { step: s }) || 0, n = get('m2p_step_seconds_count', { step: s }) || 0;
    return [s, n ? sum / n : 0];
  });
  const max = Math.max(0.001, ...steps.map((x) => x[1]));
  $('perf-steps').replaceChildren(...steps.map(([s, v]) => el('div', {}, el('span', { text: s }),
    el('i', { style: `width:${Math.max(2, (v / max) * 100)}%` }), el('span', { text: v ? fmtSecs(v) : '—' }))));
}

function buildShortcuts() {
  for (const id of ['keys-table', 'keys-overlay-table']) {
    $(id).replaceChildren(...SHORTCUTS.map(([k, d]) => el('tr', {}, el('td', {}, el('kbd', { text: k })), el('td', { text: d }))));
  }
}

/* ---------------------------------------------------------------- overlays and keys */

let lastFocus = null;
function openOverlay(id) {
  lastFocus = document.activeElement;
  $(id).hidden = false;
  $(id).querySelector('[data-close]').focus();
}
function closeOverlays() {
  let closed = false;
  for (const o of document.querySelectorAll('.overlay')) if (!o.hidden) { o.hidden = true; closed = true; }
  if (closed && lastFocus) lastFocus.focus();
  return closed;
}

function onKey(e) {
  const t = e.target;
  const typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {
    if (saveShown()) e.preventDefault();
    return;
  }
  if (e.key === 'Escape') {
    if (closeOverlays()) { e.preventDefault(); return; }
    if (state.view === 'job' && state.job && !TERMINAL.has(state.job.status)) { e.preventDefault(); cancelJob(); return; }
    if (typing) t.blur();
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  const go = { n: '#/create', g: '#/gallery', b: '#/batch', ',': '#/settings', h: '#/help' }[e.key.toLowerCase()];
  if (e.key === '?') { e.preventDefault(); openOverlay('overlay-keys'); return; }
  if (!$('overlay-keys').hidden || !$('overlay-compare').hidden) return;
  if (go) { e.preventDefault(); location.hash = go; return; }
  if (e.key === '/' && state.view === 'create') { e.preventDefault(); $('source').focus(); return; }
  if (state.view === 'image' && (e.key === 'ArrowLeft' || e.key === 'ArrowRight')) { e.preventDefault(); stepImage(e.key === 'ArrowLeft' ? -1 : 1); return; }
  if (state.view === 'gallery' && (e.key === 'ArrowLeft' || e.key === 'ArrowRight' || e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
    const links = [...$('gallery').querySelectorAll('.tile > a')];
    if (!links.length) return;
    const i = links.indexOf(document.activeElement);
    const cols = Math.max(1, Math.round($('gallery').clientWidth / (links[0].clientWidth || 1)));
    const d = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols }[e.key];
    e.preventDefault();
    links[i < 0 ? 0 : clamp(i + d, 0, links.length - 1)].focus();
    return;
  }
  if (state.view === 'job' && e.key === ' ' && t === document.body) {
    e.preventDefault();
    const a = $('audio'); if (a.src) { if (a.paused) a.play().catch(() => {}); else a.pause(); }
  }
}

/* ---------------------------------------------------------------- start */

function wire() {
  $('create-form').addEventListener('submit', onCreate);
  $('source').addEventListener('input', () => { if (state.file && $('source').value) setFile(null); showSourceCheck(); $('create-error').hidden = true; });
  for (const a of document.querySelectorAll('[data-example]')) {
    a.addEventListener('click', (e) => { e.preventDefault(); setFile(null); $('source').value = a.dataset.example; showSourceCheck(); $('source').focus(); });
  }
  wireDrop($('drop'), $('file'), (fs) => { $('source').value = ''; setFile(fs[0]); $('create-error').hidden = true; });
  $('file-clear').addEventListener('click', (e) => { e.stopPropagation(); setFile(null); });
  $('opt-template').addEventListener('input', updatePreview);
  $('tpl-from-style').addEventListener('click', () => { const p = state.presets.find((x) => x.name === state.style); if (p) { $('opt-template').value = p.template; updatePreview(); } });
  $('tpl-clear').addEventListener('click', () => { $('opt-template').value = ''; updatePreview(); });
  $('opt-template').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('create-form').requestSubmit(); } });

  $('job-cancel').addEventListener('click', cancelJob);
  $('job-share').addEventListener('click', () => copyText(linkTo(`#/job/${state.jobId}`), 'link'));
  $('job-copy-prompt').addEventListener('click', () => copyText($('job-prompt').textContent, 'prompt'));
  $('job-share-native').hidden = !navigator.share;
  $('job-share-native').addEventListener('click', async () => {
    try { await navigator.share({ title: `Mus2Pic: ${$('job-title').textContent}`, text: $('job-prompt').textContent, url: linkTo(`#/job/${state.jobId}`) }); } catch (e) { /* dismissed */ }
  });
  $('job-regen').addEventListener('click', regenerate);
  const audio = $('audio');
  for (const ev of ['timeupdate', 'seeked', 'play', 'pause']) audio.addEventListener(ev, () => drawWave(state.peaks));
  $('wave').addEventListener('click', (e) => {
    const r = e.currentTarget.getBoundingClientRect();
    const total = audio.duration || (state.peaks ? state.peaks.peaks.length * state.peaks.seconds_per_peak : 0);
    if (total) { audio.currentTime = ((e.clientX - r.left) / r.width) * total; drawWave(state.peaks); }
  });

  $('img-prev').addEventListener('click', () => stepImage(-1));
  $('img-next').addEventListener('click', () => stepImage(1));
  $('img-copy-prompt').addEventListener('click', () => copyText($('img-prompt').textContent, 'prompt'));
  $('img-copy-link').addEventListener('click', () => copyText(linkTo(`#/image/${state.image.id}`), 'link'));
  $('img-share').addEventListener('click', async () => {
    const im = state.image;
    try { await navigator.share({ title: 'Mus2Pic poster', text: im.prompt || '', url: linkTo(`#/image/${im.id}`) }); } catch (e) { /* dismissed */ }
  });

  let ft = 0;
  $('filters').addEventListener('input', () => { clearTimeout(ft); ft = setTimeout(() => loadGallery(false), 250); });
  $('filters').addEventListener('submit', (e) => { e.preventDefault(); loadGallery(false); });
  $('filters').addEventListener('reset', () => setTimeout(() => loadGallery(false), 0));
  $('gallery-more').addEventListener('click', () => loadGallery(true));
  $('sel-compare').addEventListener('click', openCompare);
  $('sel-delete').addEventListener('click', deleteSelected);
  $('sel-clear').addEventListener('click', () => { state.selected.clear(); for (const c of document.querySelectorAll('.tile .sel')) c.checked = false; for (const c of document.querySelectorAll('.tile.selected')) c.classList.remove('selected'); updateSelbar(); });

  $('batch-form').addEventListener('submit', startBatch);
  $('batch-urls').addEventListener('input', checkBatch);
  wireDrop($('batch-drop'), $('batch-files'), (fs) => {
    state.batchFiles = fs; $('batch-urls').value = '';
    $('batch-drop-label').textContent = `${fs.length} file${fs.length === 1 ? '' : 's'}: ${fs.map((f) => f.name).join(', ')}`.slice(0, 120);
    checkBatch();
  });

  $('settings-form').addEventListener('input', saveSettingsSoon);
  $('settings-form').addEventListener('change', saveSettingsSoon);
  $('settings-form').addEventListener('submit', (e) => e.preventDefault());
  $('perf-refresh').addEventListener('click', loadPerf);
  $('shortcuts-btn').addEventListener('click', () => openOverlay('overlay-keys'));
  for (const b of document.querySelectorAll('[data-close]')) b.addEventListener('click', closeOverlays);
  for (const o of document.querySelectorAll('.overlay')) o.addEventListener('click', (e) => { if (e.target === o) closeOverlays(); });
  document.addEventListener('keydown', onKey);
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => { if (state.view === 'job') drawWave(state.peaks); });
}

async function start() {
  for (const sel of [$('opt-size'), $('s-size')]) sel.replaceChildren(...SIZES.map((s) => el('option', { value: s, text: s.replace('x', ' × ') })));
  $('s-size').prepend(el('option', { value: '', text: 'server default' }));
  $('opt-size').prepend(el('option', { value: '', text: 'default (sonic 1024, lcm 512)' }));
  $('f-key').append(...KEYS.map((k) => el('option', { value: k, text: k })));
  buildShortcuts();
  buildTemplateEditor();
  if (window.matchMedia('(max-width: 640px)').matches) $('filters-box').open = false; // the grid first on a phone
  wire();
  try { state.presets = (await api('/api/presets')).presets; } catch (e) { state.presets = []; }
  buildStyleGallery();
  await loadSettings();
  try {
    const r = await api('/api/jobs?status=succeeded&limit=1');
    if (r.jobs[0] && r.jobs[0].result && r.jobs[0].result.prompt) { state.lastFragments = r.jobs[0].result.prompt.fragments; buildTemplateEditor(); }
  } catch (e) { /* fine */ }
  updatePreview();
  showSourceCheck();
  route();
  document.body.dataset.ready = '1';
}

start();
