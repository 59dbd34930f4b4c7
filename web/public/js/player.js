// Terminal replay on session.html: asciinema-player (the global the vendor
// bundle defines) playing /api/sessions/:id/cast, and the command list
// beside it. Clicking a command seeks to (ts - session.startedAt) / 1000 s.
//
// The page fetches the cast itself and hands the text to the player, so it
// knows the event times: with an idle limit the player shortens long pauses,
// and a recording-time offset must be mapped onto the shortened timeline
// (the same arithmetic as the player's own limiter).
import { api, seg } from './api.js';
import { h, replace, toMs, visible } from './dom.js';

/** Event times (seconds) from asciicast v2 text; the header is the first line. */
export function parseCast(text) {
  const lines = text.split('\n');
  let header = {};
  try {
    header = JSON.parse(lines[0] ?? '{}');
  } catch {
    header = {};
  }
  const times = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (!line || line[0] !== '[') continue;
    const comma = line.indexOf(',');
    const t = Number(line.slice(1, comma));
    if (Number.isFinite(t)) times.push(t);
  }
  return { header, times };
}

/** Maps recording time <-> player time for an idle limit (seconds; null = off). */
export class IdleMap {
  constructor(times, limit) {
    this.orig = [0];
    this.comp = [0];
    let prev = 0;
    let shift = 0;
    for (const t of times) {
      const gap = t - prev;
      if (limit !== null && gap > limit) shift += gap - limit;
      prev = t;
      this.orig.push(t);
      this.comp.push(t - shift);
    }
    this.limit = limit;
  }

  static last(arr, x) {
    let lo = 0;
    let hi = arr.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (arr[mid] <= x) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  toPlayer(t) {
    const i = IdleMap.last(this.orig, t);
    const into = t - this.orig[i];
    return this.comp[i] + (this.limit === null ? into : Math.min(into, this.limit));
  }

  toRecording(c) {
    const i = IdleMap.last(this.comp, c);
    return this.orig[i] + (c - this.comp[i]);
  }
}

/**
 * Sets up the player section. `session` is the API's session object,
 * `commands` its events of kind 'command'. Returns a small controller (used by tests via the DOM only).
 */
export async function setupPlayer(session, commands, els) {
  const castUrl = `/api/sessions/${seg(session.id)}/cast`;
  els.download.href = castUrl;
  els.download.setAttribute('download', `${session.id}.cast`);
  const res = await api.raw(castUrl);
  const text = await res.text();
  const { header, times } = parseCast(text);
  const startedAt = toMs(session.startedAt);
  const cmdTimes = commands.map((c) => {
    const ts = toMs(c.ts);
    return ts !== null && startedAt !== null ? Math.max(0, (ts - startedAt) / 1000) : 0;
  });

  // A recording's own idle_time_limit is the starting choice.
  const own = header.idle_time_limit;
  if (typeof own === 'number' && own > 0) {
    if (![...els.idle.options].some((o) => Number(o.value) === own && o.value !== '')) els.idle.append(h('option', { value: String(own) }, `${own} s`));
    els.idle.value = [...els.idle.options].find((o) => o.value !== '' && Number(o.value) === own).value;
  }
  let speed = Number(els.speed.value) || 1;
  let limit = els.idle.value === '' ? null : Number(els.idle.value);
  let map = new IdleMap(times, limit);
  let player = null;
  let playing = false;

  /** A new player (speed and idle limit are fixed at creation), positioned at `atRecording` seconds of the recording. */
  const create = async (atRecording, autoPlay) => {
    if (player) player.dispose();
    els.container.replaceChildren();
    const markers = commands.map((c, i) => [map.toPlayer(cmdTimes[i]), visible(String(c.data?.command ?? '')).slice(0, 80)]);
    player = window.AsciinemaPlayer.create({ data: text }, els.container, {
      cols: header.width, rows: header.height, speed,
      idleTimeLimit: limit === null ? Infinity : limit, // Infinity: off, even when the header names a limit
      autoPlay: false, preload: true, fit: 'width', controls: true, markers, terminalFontSize: '14px',
    });
    setPlaying(false);
    player.addEventListener('play', () => setPlaying(true));
    player.addEventListener('playing', () => setPlaying(true));
    player.addEventListener('pause', () => setPlaying(false));
    player.addEventListener('ended', () => setPlaying(false));
    if (atRecording > 0) await player.seek(map.toPlayer(atRecording));
    if (autoPlay) await player.play();
  };
  const setPlaying = (p) => {
    playing = p;
    els.play.textContent = p ? 'Pause' : 'Play';
  };
  await create(0, false);

  const now = () => {
    const t = player?.getCurrentTime?.();
    return typeof t === 'number' && Number.isFinite(t) ? t : 0;
  };
  const tick = () => {
    els.time.textContent = `${now().toFixed(1)} s`;
    els.time.dataset.seconds = String(now());
    const d = player?.getDuration?.();
    if (typeof d === 'number' && Number.isFinite(d)) els.duration.textContent = `${d.toFixed(1)} s`;
    let current = -1;
    const t = map.toRecording(now());
    for (let i = 0; i < cmdTimes.length; i++) if (cmdTimes[i] <= t + 0.05) current = i;
    for (const [i, li] of [...els.commands.children].entries()) li.classList.toggle('current', i === current);
  };
  setInterval(tick, 200);

  els.play.addEventListener('click', () => void (playing ? player.pause() : player.play()));
  const recreate = async () => {
    const at = map.toRecording(now());
    speed = Number(els.speed.value) || 1;
    limit = els.idle.value === '' ? null : Number(els.idle.value);
    map = new IdleMap(times, limit);
    await create(at, playing);
    tick();
  };
  els.speed.addEventListener('change', () => void recreate());
  els.idle.addEventListener('change', () => void recreate());

  replace(els.commands, commands.map((c, i) => {
    const b = h('button', { type: 'button', class: 'command', dataset: { at: cmdTimes[i].toFixed(3) } },
      h('span', { class: 'offset mono' }, `+${cmdTimes[i].toFixed(1)} s`),
      h('code', {}, visible(String(c.data?.command ?? ''))),
      c.data?.source && c.data.source !== 'typed' ? h('span', { class: 'badge' }, String(c.data.source)) : null);
    b.addEventListener('click', async () => {
      await player.seek(map.toPlayer(cmdTimes[i]));
      tick();
    });
    return h('li', {}, b);
  }));
  els.count.textContent = `(${commands.length})`;
  tick();
}
