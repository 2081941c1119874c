// pryvsync web app: entry point and router.
//
// Routes (in the URL fragment, so nothing reaches the server's logs):
//   #/login                 owner login
//   #/owner                 owner view (data, sharing, bookmarks); needs a session
//   #/{username}/{token}    share view for a shared or app token
//   #/ (or empty)           goes to #/owner when logged in, else #/login

import { h, field } from './dom.js';
import { Api, ApiError, isAuthFailure } from './api.js';
import { Live } from './live.js';
import { DataView } from './views.js';
import { SharingView, BookmarksView } from './owner.js';

const APP_ID = 'pryvsync-web';
const SESSION_KEY = 'pryvsync.owner';
const REVOKED_TEXT = 'This link was revoked or has expired.';

const main = document.getElementById('main');
const errorEl = document.getElementById('error');
const navEl = document.getElementById('nav');
const liveEl = document.getElementById('live-status');

let current = null; // the mounted controller: {destroy()}
let loginNotice = '';

// ------------------------------------------------------------------ errors

function errorText(err) {
  if (err instanceof ApiError) return { message: err.message, id: err.id };
  if (err && err.message) return { message: err.message, id: null };
  return { message: String(err), id: null };
}

/** Shows an error in the #error alert region. */
export function showError(err) {
  if (err instanceof ApiError && err.id === 'closed') return;
  const { message, id } = errorText(err);
  let details = null;
  if (err instanceof ApiError && err.data && typeof err.data === 'object') {
    const d = err.data;
    const list = d.unknownIds || d.overlappedIds || null;
    if (Array.isArray(list) && list.length) details = h('span', { class: 'error-data', text: ` (${list.join(', ')})` });
  }
  errorEl.replaceChildren(
    h('p', null,
      h('strong', { text: 'Error: ' }),
      message,
      details,
      id ? h('span', { class: 'error-id', text: ` [${id}]` }) : null),
    h('button', {
      type: 'button', class: 'secondary', id: 'error-dismiss',
      onclick: () => { clearError(); main.focus({ preventScroll: true }); },
    }, 'Dismiss'));
}

function clearError() {
  errorEl.replaceChildren();
}

window.addEventListener('unhandledrejection', (ev) => {
  if (ev.reason instanceof ApiError && ev.reason.id === 'closed') ev.preventDefault();
});

// ------------------------------------------------------------------ session storage

function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (s && s.username && s.sessionID && s.token) return s;
  } catch { /* corrupted */ }
  return null;
}

function saveSession(s) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
}

function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

// ------------------------------------------------------------------ chrome

function setLive(state) {
  const text = { live: 'Live', connecting: 'Connecting…', offline: 'Offline, retrying…' }[state] || '';
  liveEl.textContent = text;
  liveEl.dataset.state = state || '';
}

function setNav(...children) {
  navEl.replaceChildren(...children.filter(Boolean));
}

/** Removes every trace of data from the page. */
function wipe() {
  if (current) {
    const c = current;
    current = null;
    c.destroy();
  }
  main.replaceChildren();
  clearError();
  setNav();
  setLive('');
  document.title = 'pryvsync';
}

function showRevoked() {
  wipe();
  const box = h('section', { id: 'revoked-message', class: 'panel notice', role: 'alert', tabindex: '-1' },
    h('h1', { text: 'Access ended' }),
    h('p', { class: 'lead', text: REVOKED_TEXT }),
    h('p', { class: 'muted', text: 'Ask the person who shared it with you for a new link. If you pasted it, check that it is complete.' }));
  main.append(box);
  box.focus();
  if (loadSession()) setNav(h('a', { href: '#/owner', class: 'button secondary', text: 'Your account' }));
}

// ------------------------------------------------------------------ routes

function parseRoute(hash) {
  const raw = (hash || '').replace(/^#\/?/, '');
  const parts = raw.split('/').filter(Boolean);
  let decoded;
  try {
    decoded = parts.map((p) => decodeURIComponent(p));
  } catch {
    return { name: 'notfound' };
  }
  if (decoded.length === 0) return { name: 'home' };
  if (decoded.length === 1 && decoded[0] === 'login') return { name: 'login' };
  if (decoded.length === 1 && decoded[0] === 'owner') return { name: 'owner' };
  if (decoded.length === 2) return { name: 'share', username: decoded[0], token: decoded[1] };
  return { name: 'notfound' };
}

function route() {
  wipe();
  const r = parseRoute(location.hash);
  switch (r.name) {
    case 'home':
      location.replace(loadSession() ? '#/owner' : '#/login');
      return;
    case 'login':
      if (loadSession()) {
        location.replace('#/owner');
        return;
      }
      mountLogin();
      return;
    case 'owner':
      mountOwner();
      return;
    case 'share':
      mountShare(r.username, r.token);
      return;
    default:
      main.append(h('section', { class: 'panel notice' },
        h('h1', { text: 'Page not found' }),
        h('p', null, 'This address is not a page of the app. ', h('a', { href: '#/login', text: 'Go to the login page' }), '.')));
  }
}

function loading(text) {
  main.replaceChildren(h('p', { class: 'status', role: 'status', text }));
}

// ------------------------------------------------------------------ login

function mountLogin() {
  document.title = 'Log in · pryvsync';
  const username = h('input', {
    type: 'text', id: 'login-username', name: 'username', autocomplete: 'username',
    autocapitalize: 'none', spellcheck: 'false', required: true,
  });
  const password = h('input', {
    type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true,
  });
  const submit = h('button', { type: 'submit', id: 'login-submit', text: 'Log in' });
  let ctl = { destroyed: false, destroy() { this.destroyed = true; } };
  current = ctl;

  const form = h('form', {
    id: 'login-form', class: 'stack', novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      clearError();
      const u = username.value.trim().toLowerCase();
      const p = password.value;
      if (!u) { showError(new Error('Enter your username.')); username.focus(); return; }
      if (!p) { showError(new Error('Enter your password.')); password.focus(); return; }
      submit.disabled = true;
      submit.setAttribute('aria-busy', 'true');
      try {
        const anon = new Api(u, '');
        const login = await anon.post('admin/login', { username: u, password: p, appId: APP_ID });
        if (!login || !login.sessionID) throw new Error('The server did not open a session.');
        const admin = new Api(u, login.sessionID);
        const app = await admin.post('admin/get-app-token', { appId: APP_ID });
        const token = app && (app.id || app.token);
        if (!token) throw new Error('The server did not give an access token.');
        if (ctl.destroyed) return;
        saveSession({ username: u, sessionID: login.sessionID, token });
        password.value = '';
        location.hash = '#/owner';
      } catch (e) {
        if (ctl.destroyed) return;
        showError(e);
        password.focus();
      } finally {
        submit.disabled = false;
        submit.removeAttribute('aria-busy');
      }
    },
  },
  field('Username', username),
  field('Password', password),
  h('div', { class: 'row' }, submit));

  const notice = loginNotice ? h('p', { class: 'notice-inline', role: 'status', text: loginNotice }) : null;
  loginNotice = '';
  main.append(h('section', { class: 'panel narrow', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title', text: 'Log in to your account' }),
    notice,
    form,
    h('p', { class: 'muted', text: 'Opening a link someone shared with you? Just open that link: no account is needed.' })));
  username.focus();
}

// ------------------------------------------------------------------ share view

function mountShare(username, token) {
  document.title = 'Shared data · pryvsync';
  const ctl = {
    destroyed: false,
    parts: [],
    destroy() {
      this.destroyed = true;
      for (const p of this.parts) p.destroy ? p.destroy() : p.stop();
      this.parts = [];
      api.close();
    },
  };
  const revoked = () => {
    if (ctl.destroyed || current !== ctl) return;
    showRevoked();
  };
  const api = new Api(username, token, { onAuthLost: revoked });
  current = ctl;
  loading('Opening the shared data…');

  (async () => {
    let info;
    try {
      info = await api.get('access-info');
    } catch (e) {
      if (ctl.destroyed || isAuthFailure(e)) return; // revoked() already ran
      main.replaceChildren(h('section', { class: 'panel notice' },
        h('h1', { text: 'This link could not be opened' }),
        h('p', { text: e.message })));
      showError(e);
      return;
    }
    if (ctl.destroyed) return;
    let lastPerms = JSON.stringify(info.permissions || []);
    const view = new DataView({ api, info, owner: info.type === 'personal', onError: showError });
    ctl.parts.push(view);
    const title = info.name ? info.name : `Data shared by ${username}`;
    document.title = `${title} · pryvsync`;
    const expires = typeof info.expires === 'number'
      ? ` Link valid until ${new Date(info.expires * 1000).toLocaleString()}.` : '';
    setNav(
      h('span', { class: 'who' }, 'Shared by ', h('strong', { text: username })),
      loadSession() ? h('a', { href: '#/owner', class: 'button secondary', text: 'Your account' }) : null);
    main.replaceChildren(
      h('header', { class: 'page-head' },
        h('h1', { text: title }),
        h('p', { class: 'muted', text: `Access: ${DataView.describeAccess(info)}.${expires}` })),
      view.el);
    view.start();

    let ticks = 0;
    const live = new Live({
      api,
      onMessage: (m) => view.onNotify(m),
      onRevoked: revoked,
      onStatus: setLive,
      onAccessInfo: (i) => {
        const perms = JSON.stringify(i.permissions || []);
        if (perms !== lastPerms) {
          lastPerms = perms;
          view.setInfo(i);
          view.reload();
        }
      },
      onTick: () => {
        ticks += 1;
        if (ticks % 3 === 0) view.reload(); // socket down: poll the data too
      },
    });
    ctl.parts.push(live);
    live.start();
  })();
}

// ------------------------------------------------------------------ owner view

function mountOwner() {
  const session = loadSession();
  if (!session) {
    location.replace('#/login');
    return;
  }
  document.title = `${session.username} · pryvsync`;
  const ctl = {
    destroyed: false,
    parts: [],
    destroy() {
      this.destroyed = true;
      for (const p of this.parts) p.destroy ? p.destroy() : p.stop();
      this.parts = [];
      api.close();
      admin.close();
    },
  };
  const lost = () => {
    if (ctl.destroyed || current !== ctl) return;
    clearSession();
    wipe();
    loginNotice = 'Your session has ended. Please log in again.';
    location.hash = '#/login';
  };
  const api = new Api(session.username, session.token, { onAuthLost: lost });
  const admin = new Api(session.username, session.sessionID, { onAuthLost: lost });
  current = ctl;
  loading('Loading your data…');

  const logout = async () => {
    try {
      await admin.post('admin/logout', {});
    } catch { /* the session may already be gone */ }
    clearSession();
    wipe();
    location.hash = '#/login';
  };
  const jump = (id) => {
    const target = document.getElementById(id);
    if (target) {
      target.scrollIntoView({ behavior: 'smooth', block: 'start' });
      target.focus({ preventScroll: true });
    }
  };

  (async () => {
    let info;
    try {
      info = await api.get('access-info');
    } catch (e) {
      if (ctl.destroyed || isAuthFailure(e)) return;
      main.replaceChildren();
      showError(e);
      return;
    }
    if (ctl.destroyed) return;
    const data = new DataView({ api, info, owner: true, onError: showError });
    const sharing = new SharingView({ api, username: session.username, onError: showError });
    const bookmarks = new BookmarksView({ api: admin, onError: showError });
    ctl.parts.push(data, sharing, bookmarks);

    setNav(
      h('span', { class: 'who' }, 'Signed in as ', h('strong', { text: session.username })),
      h('button', { type: 'button', class: 'link', onclick: () => jump('section-data') }, 'Data'),
      h('button', { type: 'button', class: 'link', onclick: () => jump('section-sharing') }, 'Sharing'),
      h('button', { type: 'button', class: 'link', onclick: () => jump('section-bookmarks') }, 'Bookmarks'),
      h('button', { type: 'button', id: 'logout', class: 'secondary', onclick: logout }, 'Log out'));
    main.replaceChildren(
      h('section', { class: 'owner-section', 'aria-labelledby': 'section-data' },
        h('h1', { id: 'section-data', tabindex: '-1', text: 'Your data' }), data.el),
      h('section', { class: 'owner-section', 'aria-labelledby': 'section-sharing' },
        h('h2', { id: 'section-sharing', class: 'section-title', tabindex: '-1', text: 'Sharing' }), sharing.el),
      h('section', { class: 'owner-section', 'aria-labelledby': 'section-bookmarks' },
        h('h2', { id: 'section-bookmarks', class: 'section-title', tabindex: '-1', text: 'Bookmarks' }), bookmarks.el));
    data.start();
    sharing.start();
    bookmarks.start();

    let ticks = 0;
    const live = new Live({
      api,
      onMessage: (m) => { data.onNotify(m); sharing.onNotify(m); },
      onRevoked: lost,
      onStatus: setLive,
      onTick: () => {
        ticks += 1;
        if (ticks % 3 === 0) data.reload();
      },
    });
    ctl.parts.push(live);
    live.start();
  })();
}

// ------------------------------------------------------------------ start

document.getElementById('skip-link')?.addEventListener('click', () => main.focus());
window.addEventListener('hashchange', route);
route();
