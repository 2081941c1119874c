// Owner-only views: sharing (shared accesses) and bookmarks.

import { h, field, replaceChildren, copyText } from './dom.js';
import { path, ApiError } from './api.js';
import * as fmt from './format.js';
import { indexFolders } from './rights.js';

const LEVELS = [
  { value: 'read', text: 'Read: see the data' },
  { value: 'contribute', text: 'Contribute: also add, edit and trash events' },
  { value: 'manage', text: 'Manage: also create and change folders' },
];

const EXPIRY = [
  { value: '', text: 'Never' },
  { value: String(3600), text: 'In 1 hour' },
  { value: String(86400), text: 'In 1 day' },
  { value: String(7 * 86400), text: 'In 7 days' },
  { value: String(30 * 86400), text: 'In 30 days' },
  { value: String(365 * 86400), text: 'In 1 year' },
];

function isClosed(err) {
  return err instanceof ApiError && err.id === 'closed';
}

export class SharingView {
  /**
   * @param {object} o
   * @param {import('./api.js').Api} o.api personal token
   * @param {string} o.username
   * @param {(err: Error) => void} o.onError
   */
  constructor(o) {
    this.api = o.api;
    this.username = o.username;
    this.onError = o.onError;
    this.channels = [];
    this.folderCache = new Map(); // channelId -> Promise<indexFolders>
    this.shares = [];
    this.notice = null; // {text, shares}: said with that list of shares
    this.destroyed = false;
    this.seq = 0;
    this.el = this.build();
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.refresher);
    this.shares = [];
    this.el.replaceChildren();
    this.el.remove();
  }

  fail(err) {
    if (!this.destroyed && !isClosed(err)) this.onError(err);
  }

  build() {
    this.sChannel = h('select', { id: 'share-channel', required: true, onchange: () => this.renderFolderChoices() });
    this.sFolders = h('fieldset', { id: 'share-folders', class: 'folder-choices' });
    this.sTags = h('input', { type: 'text', id: 'share-tags', autocomplete: 'off' });
    this.sFrom = h('input', { type: 'datetime-local', id: 'share-from' });
    this.sTo = h('input', { type: 'datetime-local', id: 'share-to' });
    this.sLevel = h('select', { id: 'share-level' }, LEVELS.map((l) => h('option', { value: l.value, text: l.text })));
    this.sExpire = h('select', { id: 'share-expire' }, EXPIRY.map((l) => h('option', { value: l.value, text: l.text })));
    this.sName = h('input', { type: 'text', id: 'share-name', autocomplete: 'off', placeholder: 'e.g. For my doctor' });
    this.sSubmit = h('button', { type: 'submit', id: 'share-submit', text: 'Create share link' });
    this.result = h('div', { id: 'share-result', class: 'result', hidden: true });

    const form = h('form', {
      id: 'share-form', class: 'stack', novalidate: true,
      onsubmit: (ev) => { ev.preventDefault(); this.create(); },
    },
    field('Channel', this.sChannel),
    this.sFolders,
    field('Only events tagged (optional)', this.sTags, 'Comma-separated; an event is shared if it has at least one of these tags.'),
    h('div', { class: 'row wrap' },
      field('Shared from (optional)', this.sFrom),
      field('Shared until (optional)', this.sTo)),
    field('Level', this.sLevel),
    field('Link expires', this.sExpire),
    field('Name (optional)', this.sName, 'Shown in your list of shares.'),
    h('div', { class: 'row' }, this.sSubmit));

    this.listStatus = h('p', { class: 'status', role: 'status', id: 'shares-status', tabindex: '-1' });
    this.listEl = h('ul', { id: 'shares-list', class: 'cards' });

    return h('div', { class: 'sharing' },
      h('section', { class: 'panel', 'aria-labelledby': 'share-new-title' },
        h('h3', { id: 'share-new-title', text: 'New share' }), form, this.result),
      h('section', { class: 'panel', 'aria-labelledby': 'shares-title' },
        h('div', { class: 'row spread' },
          h('h3', { id: 'shares-title', text: 'Your shares' }),
          h('button', { type: 'button', class: 'secondary', id: 'shares-refresh', text: 'Refresh', onclick: () => this.loadShares() })),
        this.listStatus, this.listEl));
  }

  async start() {
    // Keeps "last used" fresh.
    this.refresher = setInterval(() => this.loadShares(), 30000);
    await Promise.all([this.loadChannels(), this.loadShares()]);
  }

  onNotify(msg) {
    if (this.destroyed) return;
    if (msg.type === 'channelsChanged' || msg.type === 'reconnected') {
      if (msg.type === 'reconnected') this.folderCache.clear();
      this.loadChannels();
      this.loadShares();
    } else if (msg.type === 'foldersChanged') {
      this.folderCache.delete(msg.channelId);
      if (msg.channelId === this.sChannel.value) this.renderFolderChoices();
      this.renderShares();
    }
  }

  async loadChannels() {
    let list;
    try {
      list = await this.api.get('channels');
    } catch (e) {
      this.fail(e);
      return;
    }
    if (this.destroyed) return;
    this.channels = Array.isArray(list) ? list.filter((c) => c && !c.trashed) : [];
    const previous = this.sChannel.value;
    this.sChannel.replaceChildren(
      ...this.channels.map((c) => h('option', { value: c.id, text: c.name || c.id })),
      h('option', { value: '*', text: 'All channels (also ones created later)' }));
    if (this.channels.some((c) => c.id === previous) || previous === '*') this.sChannel.value = previous;
    else if (this.channels.length) this.sChannel.value = this.channels[0].id;
    this.renderFolderChoices();
    this.renderShares();
  }

  folders(channelId) {
    if (!channelId || channelId === '*') return Promise.resolve(indexFolders([]));
    let p = this.folderCache.get(channelId);
    if (!p) {
      p = this.api.get(path(channelId, 'folders')).then((tree) => indexFolders(Array.isArray(tree) ? tree : []));
      p.catch(() => this.folderCache.delete(channelId));
      this.folderCache.set(channelId, p);
    }
    return p;
  }

  async renderFolderChoices() {
    const cid = this.sChannel.value;
    const checked = new Set([...this.sFolders.querySelectorAll('input:checked')].map((i) => i.dataset.folderId));
    const legend = h('legend', { text: 'Folders (optional)' });
    const hint = h('p', { class: 'hint', id: 'share-folders-hint', text: 'Leave all unchecked to share the whole channel.' });
    if (!cid || cid === '*') {
      replaceChildren(this.sFolders, legend, h('p', { class: 'hint', text: 'All channels are shared whole.' }));
      return;
    }
    let idx;
    try {
      idx = await this.folders(cid);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (this.destroyed || cid !== this.sChannel.value) return;
    const box = (folderId, label, depth) => {
      const id = `share-folder-${folderId === 'null' ? 'none' : folderId}`;
      return h('div', { class: `check depth-${Math.min(depth, 6)}` },
        h('input', {
          type: 'checkbox', id, value: folderId, dataset: { folderId, key: `sf:${folderId}` },
          checked: checked.has(folderId), 'aria-describedby': 'share-folders-hint',
        }),
        h('label', { for: id, text: label }));
    };
    replaceChildren(this.sFolders, legend, hint,
      idx.flat.map(({ folder, depth }) => box(folder.id, folder.name || folder.id, depth)),
      box('null', 'Events without a folder', 0),
      idx.flat.length === 0 ? h('p', { class: 'muted', text: 'This channel has no folders.' }) : null);
  }

  async create() {
    const cid = this.sChannel.value;
    if (!cid) {
      this.onError(new Error('Create a channel first: there is nothing to share yet.'));
      return;
    }
    const level = this.sLevel.value;
    const from = fmt.fromLocalInput(this.sFrom.value);
    const to = fmt.fromLocalInput(this.sTo.value);
    if (from !== null && to !== null && from > to) {
      this.onError(new Error('The start of the time frame must be before its end.'));
      this.sFrom.focus();
      return;
    }
    const perm = { channelId: cid, level };
    const folderIds = [...this.sFolders.querySelectorAll('input:checked')].map((i) => i.dataset.folderId);
    if (folderIds.length && cid !== '*') {
      perm.folderPermissions = folderIds.map((id) => ({ folderId: id === 'null' ? null : id, level }));
    }
    const tags = fmt.parseTags(this.sTags.value);
    if (tags.length) perm.tags = tags;
    if (from !== null || to !== null) perm.timeFrame = { from, to };
    const channelName = cid === '*' ? 'all channels' : (this.channels.find((c) => c.id === cid)?.name || cid);
    const name = this.sName.value.trim() || `Share of ${channelName} (${fmt.dateTimeLabel(Date.now() / 1000)})`;
    const body = { name, type: 'shared', permissions: [perm] };
    if (this.sExpire.value) body.expireAfter = Number(this.sExpire.value);

    this.sSubmit.disabled = true;
    this.sSubmit.setAttribute('aria-busy', 'true');
    try {
      const res = await this.api.post('accesses', body);
      const token = res && (res.token || (res.access && res.access.token));
      if (!token) throw new Error('The server did not return the new token.');
      this.showResult(name, token);
      this.sName.value = '';
      await this.loadShares();
    } catch (e) {
      this.fail(e);
    } finally {
      this.sSubmit.disabled = false;
      this.sSubmit.removeAttribute('aria-busy');
    }
  }

  link(token) {
    return fmt.shareLink(location.origin, this.username, token);
  }

  showResult(name, token) {
    const link = this.link(token);
    const input = h('input', { type: 'text', id: 'share-link', readonly: true, value: link, dataset: { token } });
    const status = h('p', { class: 'status', role: 'status', id: 'share-copy-status' });
    const copy = h('button', {
      type: 'button', id: 'share-copy',
      onclick: async () => {
        const ok = await copyText(link, input);
        status.textContent = ok ? 'Link copied.' : 'The link is selected: press Ctrl+C (or ⌘C) to copy it.';
      },
    }, 'Copy');
    input.addEventListener('focus', () => input.select());
    replaceChildren(this.result,
      h('p', { class: 'success', text: `Share “${name}” created. Anyone with this link can open it:` }),
      h('div', { class: 'field' },
        h('label', { for: 'share-link', text: 'Share link' }),
        h('div', { class: 'row nowrap' }, input, copy)),
      status);
    this.result.hidden = false;
    input.focus();
  }

  async loadShares() {
    const seq = ++this.seq;
    let list;
    try {
      list = await this.api.get('accesses');
    } catch (e) {
      this.fail(e);
      return;
    }
    if (this.destroyed || seq !== this.seq) return;
    this.shares = (Array.isArray(list) ? list : []).filter((a) => a && (a.type || 'shared') === 'shared');
    this.shares.sort((a, b) => (b.created || 0) - (a.created || 0));
    this.renderShares();
  }

  async renderShares() {
    const shares = this.shares;
    // Folder names for the scope descriptions.
    const cids = new Set();
    for (const a of shares) for (const p of a.permissions || []) if (p && p.folderPermissions && p.folderPermissions.length) cids.add(p.channelId);
    const idx = new Map();
    await Promise.all([...cids].map(async (cid) => {
      try { idx.set(cid, await this.folders(cid)); } catch { /* names fall back to ids */ }
    }));
    if (this.destroyed || shares !== this.shares) return;
    const count = shares.length
      ? `${shares.length} share${shares.length === 1 ? '' : 's'}.`
      : 'You have not shared anything yet.';
    const notice = this.notice && this.notice.shares === shares ? `${this.notice.text} ` : '';
    this.listStatus.textContent = notice + count;
    replaceChildren(this.listEl, shares.map((a) => this.renderShare(a, idx)));
  }

  renderShare(a, idx) {
    const now = Date.now() / 1000;
    const expired = typeof a.expires === 'number' && a.expires <= now;
    const rows = [];
    const dt = (term, desc) => rows.push(h('dt', { text: term }), h('dd', { text: desc }));
    for (const p of a.permissions || []) {
      if (!p) continue;
      const ch = p.channelId === '*' ? 'All channels' : (this.channels.find((c) => c.id === p.channelId)?.name || p.channelId);
      dt('Channel', `${ch} (${p.level})`);
      if (Array.isArray(p.folderPermissions) && p.folderPermissions.length) {
        const names = p.folderPermissions.map((fp) => {
          if (fp.folderId === null) return 'events without a folder';
          const n = idx.get(p.channelId)?.byId.get(fp.folderId)?.folder.name || fp.folderId;
          return fp.level && fp.level !== p.level ? `${n} (${fp.level})` : n;
        });
        dt('Folders', names.join(', '));
      } else {
        dt('Folders', 'whole channel');
      }
      if (Array.isArray(p.tags) && p.tags.length) dt('Tags', p.tags.join(', '));
      if (p.timeFrame && (p.timeFrame.from != null || p.timeFrame.to != null)) {
        const f = p.timeFrame.from != null ? fmt.dateTimeLabel(p.timeFrame.from) : 'the beginning';
        const t = p.timeFrame.to != null ? fmt.dateTimeLabel(p.timeFrame.to) : 'now on';
        dt('Time frame', `${f} to ${t}`);
      }
    }
    if (a.created) dt('Created', fmt.dateTimeLabel(a.created));
    dt('Last used', a.lastUsed ? fmt.dateTimeLabel(a.lastUsed) : 'never');
    if (typeof a.expires === 'number') dt(expired ? 'Expired' : 'Expires', fmt.dateTimeLabel(a.expires));

    const name = a.name || '(no name)';
    const linkId = `share-link-${a.id || a.token}`.replace(/[^A-Za-z0-9_-]/g, '_');
    const input = h('input', {
      type: 'text', id: linkId, class: 'share-link-input', readonly: true, value: this.link(a.token), dataset: { key: `link:${a.token}` },
    });
    input.addEventListener('focus', () => input.select());
    const status = h('span', { class: 'status', role: 'status' });
    return h('li', { class: `share card${expired ? ' expired' : ''}`, dataset: { token: a.token, id: a.id || '' } },
      h('h4', { class: 'share-name' }, name, expired ? h('span', { class: 'badge badge-warn', text: 'Expired' }) : null),
      h('dl', { class: 'share-scope' }, rows),
      h('div', { class: 'field' },
        h('label', { for: linkId, text: 'Link' }),
        h('div', { class: 'row nowrap' }, input,
          h('button', {
            type: 'button', class: 'share-copy-link secondary', dataset: { key: `copy:${a.token}` },
            onclick: async () => {
              const ok = await copyText(input.value, input);
              status.textContent = ok ? 'Copied.' : 'Selected: press Ctrl+C to copy.';
            },
          }, 'Copy', h('span', { class: 'sr-only', text: ` link of ${name}` })))),
      status,
      h('div', { class: 'row' },
        h('button', {
          type: 'button', class: 'share-revoke danger', dataset: { key: `revoke:${a.token}` },
          onclick: (ev) => this.revoke(a, ev.currentTarget),
        }, 'Revoke', h('span', { class: 'sr-only', text: ` ${name}` }))));
  }

  async revoke(a, button) {
    button.disabled = true;
    try {
      await this.api.del(path('accesses', a.token));
      const shown = this.result.querySelector('#share-link');
      if (shown && shown.dataset.token === a.token) {
        this.result.hidden = true;
        this.result.replaceChildren();
      }
      await this.loadShares();
      // Drawing the list rewrites the status line: the notice goes with this
      // list, until the next reload of the shares.
      this.notice = { text: `Share “${a.name || a.token}” revoked. Its link no longer works.`, shares: this.shares };
      await this.renderShares();
      // The focused Revoke button is gone: keep the keyboard user in the list.
      if (!this.destroyed && !this.el.contains(document.activeElement)) this.listStatus.focus({ preventScroll: true });
    } catch (e) {
      button.disabled = false;
      this.fail(e);
    }
  }
}

export class BookmarksView {
  /**
   * @param {object} o
   * @param {import('./api.js').Api} o.api session id (admin calls)
   * @param {(err: Error) => void} o.onError
   */
  constructor(o) {
    this.api = o.api;
    this.onError = o.onError;
    this.bookmarks = [];
    this.destroyed = false;
    this.el = this.build();
  }

  destroy() {
    this.destroyed = true;
    this.bookmarks = [];
    this.el.replaceChildren();
    this.el.remove();
  }

  fail(err) {
    if (!this.destroyed && !isClosed(err)) this.onError(err);
  }

  build() {
    this.bName = h('input', { type: 'text', id: 'bookmark-name', autocomplete: 'off', required: true });
    this.bLink = h('input', { type: 'url', id: 'bookmark-link', autocomplete: 'off', required: true, placeholder: 'https://…/app/#/username/token' });
    this.bSubmit = h('button', { type: 'submit', id: 'bookmark-submit', text: 'Add bookmark' });
    const form = h('form', {
      id: 'bookmark-form', class: 'stack', novalidate: true,
      onsubmit: (ev) => { ev.preventDefault(); this.add(); },
    },
    field('Name', this.bName),
    field('Share link', this.bLink, 'A link someone shared with you.'),
    h('div', { class: 'row' }, this.bSubmit));
    this.status = h('p', { class: 'status', role: 'status', id: 'bookmarks-status' });
    this.listEl = h('ul', { id: 'bookmarks-list', class: 'cards' });
    return h('div', { class: 'bookmarks' },
      h('section', { class: 'panel', 'aria-labelledby': 'bookmark-new-title' },
        h('h3', { id: 'bookmark-new-title', text: 'Add a shared link' }), form),
      h('section', { class: 'panel', 'aria-labelledby': 'bookmarks-title' },
        h('h3', { id: 'bookmarks-title', text: 'Shared with you' }), this.status, this.listEl));
  }

  async start() {
    await this.load();
  }

  async load() {
    let list;
    try {
      list = await this.api.get('admin/bookmarks');
    } catch (e) {
      this.fail(e);
      return;
    }
    if (this.destroyed) return;
    this.bookmarks = Array.isArray(list) ? list : [];
    this.render();
  }

  render() {
    this.status.textContent = this.bookmarks.length ? '' : 'No bookmarks yet.';
    replaceChildren(this.listEl, this.bookmarks.map((b) => {
      const link = fmt.bookmarkLink(b);
      const name = b.name || b.url;
      return h('li', { class: 'bookmark card', dataset: { id: b.id } },
        h('h4', { class: 'bookmark-name', text: name }),
        h('p', { class: 'muted bookmark-url', text: b.url }),
        h('div', { class: 'row' },
          link
            ? h('a', { class: 'bookmark-open button', href: link, rel: 'noreferrer' }, 'Open', h('span', { class: 'sr-only', text: ` ${name}` }))
            : h('span', { class: 'muted', text: 'This bookmark has no usable link.' }),
          h('button', {
            type: 'button', class: 'bookmark-delete danger', dataset: { key: `bm:${b.id}` },
            onclick: (ev) => this.remove(b, ev.currentTarget),
          }, 'Delete', h('span', { class: 'sr-only', text: ` bookmark ${name}` }))));
    }));
  }

  async add() {
    const name = this.bName.value.trim();
    const parsed = fmt.parseShareLink(this.bLink.value);
    if (!name) {
      this.onError(new Error('Give the bookmark a name.'));
      this.bName.focus();
      return;
    }
    if (!parsed) {
      this.onError(new Error('This is not a share link. A share link looks like https://HOST/app/#/username/token.'));
      this.bLink.focus();
      return;
    }
    this.bSubmit.disabled = true;
    try {
      await this.api.post('admin/bookmarks', { name, url: parsed.apiUrl, accessToken: parsed.token });
      this.bName.value = '';
      this.bLink.value = '';
      this.status.textContent = `Bookmark “${name}” added.`;
      await this.load();
    } catch (e) {
      this.fail(e);
    } finally {
      this.bSubmit.disabled = false;
    }
  }

  async remove(b, button) {
    button.disabled = true;
    try {
      await this.api.del(path('admin', 'bookmarks', b.id));
      await this.load();
      this.status.textContent = `Bookmark “${b.name}” deleted.`;
    } catch (e) {
      button.disabled = false;
      this.fail(e);
    }
  }
}
