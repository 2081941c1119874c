// The data view: channels, folder tree, filters, timeline, note form.
// Used for shared/app tokens and for the owner (personal token).

import { h, field, replaceChildren } from './dom.js';
import { path, ApiError } from './api.js';
import * as fmt from './format.js';
import {
  indexFolders, canContribute, writableFolders, requiredTags, timeFrames, writeFrames, levelFor, RANK,
} from './rights.js';

const PAGE = 50;
const LEVEL_LABEL = { read: 'read only', contribute: 'can add and edit', manage: 'can manage' };

function srOnly(text) {
  return h('span', { class: 'sr-only', text });
}

function sameJSON(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class DataView {
  /**
   * @param {object} o
   * @param {import('./api.js').Api} o.api
   * @param {object} o.info access-info of the token
   * @param {boolean} o.owner the account owner (personal token)
   * @param {(err: Error) => void} o.onError
   */
  constructor(o) {
    this.api = o.api;
    this.info = o.info;
    this.owner = !!o.owner;
    this.onError = o.onError;
    this.channels = [];
    this.channelId = null;
    this.folders = indexFolders([]);
    this.filter = { folder: undefined, tags: [], from: null, to: null, state: 'default' };
    this.limit = PAGE;
    this.events = [];
    this.eventsLoaded = false;
    this.hasMore = false;
    this.editing = null;
    this.renderDeferred = false;
    this.blobs = new Map();
    this.seq = { channels: 0, folders: 0, events: 0 };
    // Events whose trash or restore request is in flight: a second click
    // (a double click, or a redrawn button) must not send it again, since
    // deleting a trashed event deletes it for good.
    this.busy = new Set();
    this.eventsTimer = null;
    this.destroyed = false;
    this.el = this.build();
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.ticker);
    clearTimeout(this.eventsTimer);
    for (const p of this.blobs.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
    this.blobs.clear();
    this.events = [];
    this.channels = [];
    this.el.replaceChildren();
    this.el.remove();
  }

  fail(err) {
    if (this.destroyed || (err instanceof ApiError && err.id === 'closed')) return;
    this.onError(err);
  }

  // ---------------------------------------------------------------- layout

  build() {
    this.channelsEl = h('ul', { id: 'channels', class: 'pick-list' });
    this.foldersEl = h('div', { id: 'folders' });
    this.folderFormWrap = h('div');
    this.channelFormWrap = h('div');
    this.filtersForm = this.buildFilters();
    this.noteSection = this.buildNoteForm();
    this.timelineStatus = h('p', { id: 'timeline-status', class: 'status', role: 'status' });
    this.timelineEl = h('div', { id: 'timeline', 'aria-busy': 'true' });
    this.moreBtn = h('button', {
      type: 'button', id: 'load-more', class: 'secondary', hidden: true,
      onclick: () => { this.limit += PAGE; this.loadEvents(); },
    }, 'Show older events');
    if (this.owner) this.channelFormWrap.append(this.buildChannelForm());
    // On a phone-sized screen the folder tree and filters start folded.
    const wide = !globalThis.matchMedia || !globalThis.matchMedia('(max-width: 700px)').matches;

    return h('div', { class: 'data-view' },
      h('aside', { class: 'sidebar', 'aria-label': 'Channels, folders and filters' },
        h('section', { class: 'panel', 'aria-labelledby': 'channels-title' },
          h('h2', { id: 'channels-title', text: 'Channels' }), this.channelsEl, this.channelFormWrap),
        h('details', { class: 'panel collapsible', open: wide },
          h('summary', null, h('h2', { id: 'folders-title', text: 'Folders' })), this.foldersEl, this.folderFormWrap),
        h('details', { class: 'panel collapsible', open: wide },
          h('summary', null, h('h2', { id: 'filters-title', text: 'Filters' })), this.filtersForm)),
      h('div', { class: 'main-col' },
        this.noteSection,
        h('section', { class: 'panel timeline-panel', 'aria-labelledby': 'timeline-title' },
          h('h2', { id: 'timeline-title', text: 'Timeline' }),
          this.timelineStatus, this.timelineEl, this.moreBtn)));
  }

  buildFilters() {
    this.fTags = h('input', { type: 'text', id: 'filter-tags', autocomplete: 'off', inputmode: 'text' });
    this.fFrom = h('input', { type: 'datetime-local', id: 'filter-from' });
    this.fTo = h('input', { type: 'datetime-local', id: 'filter-to' });
    this.fState = h('select', { id: 'filter-state', onchange: () => this.applyFilters() },
      h('option', { value: 'default', text: 'Current events' }),
      h('option', { value: 'trashed', text: 'Trash' }),
      h('option', { value: 'all', text: 'Current and trashed' }));
    const form = h('form', {
      id: 'filters-form', class: 'stack', novalidate: true,
      onsubmit: (ev) => { ev.preventDefault(); this.applyFilters(); },
    },
    field('Tags', this.fTags, 'Comma-separated; events having all of them.'),
    field('From', this.fFrom),
    field('To', this.fTo),
    field('Show', this.fState),
    h('div', { class: 'row' },
      h('button', { type: 'submit', id: 'filter-apply', text: 'Apply filters' }),
      h('button', {
        type: 'button', id: 'filter-clear', class: 'secondary', text: 'Clear',
        onclick: () => this.clearFilters(),
      })));
    return form;
  }

  applyFilters() {
    const from = fmt.fromLocalInput(this.fFrom.value);
    const to = fmt.fromLocalInput(this.fTo.value);
    if (from !== null && to !== null && from > to) {
      this.onError(new Error('The "From" time must be before the "To" time.'));
      return;
    }
    this.filter.tags = fmt.parseTags(this.fTags.value);
    this.filter.from = from;
    this.filter.to = to;
    this.filter.state = this.fState.value;
    this.limit = PAGE;
    this.loadEvents();
  }

  clearFilters() {
    this.fTags.value = '';
    this.fFrom.value = '';
    this.fTo.value = '';
    this.fState.value = 'default';
    this.filter = { folder: undefined, tags: [], from: null, to: null, state: 'default' };
    this.limit = PAGE;
    this.renderFolders();
    this.loadEvents();
  }

  addTagFilter(tag) {
    if (!this.filter.tags.includes(tag)) {
      const tags = fmt.parseTags(this.fTags.value);
      if (!tags.includes(tag)) tags.push(tag);
      this.fTags.value = tags.join(', ');
    }
    this.applyFilters();
  }

  buildChannelForm() {
    const name = h('input', { type: 'text', id: 'channel-name', required: true, autocomplete: 'off' });
    const form = h('form', {
      id: 'channel-form', class: 'stack compact',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const n = name.value.trim();
        if (!n) { name.focus(); return; }
        try {
          const res = await this.api.post('channels', { name: n });
          name.value = '';
          if (res && res.id) this.channelId = res.id;
          await this.loadChannels(true);
        } catch (e) { this.fail(e); }
      },
    },
    field('New channel', name),
    h('button', { type: 'submit', class: 'secondary', id: 'channel-submit', text: 'Create channel' }));
    return form;
  }

  buildFolderForm() {
    const cid = this.channelId;
    if (!cid) return null;
    const rootOK = this.canManageRoot(cid);
    const parents = this.folders.flat.filter(({ folder }) => levelFor(this.info, cid, folder.id, this.folders) === 'manage');
    if (!rootOK && parents.length === 0) return null;
    const name = h('input', { type: 'text', id: 'folder-name', required: true, autocomplete: 'off' });
    const parent = h('select', { id: 'folder-parent' },
      rootOK ? h('option', { value: '', text: '(top level)' }) : null,
      parents.map(({ folder, depth }) => h('option', { value: folder.id, text: `${'  '.repeat(depth)}${folder.name}` })));
    return h('form', {
      id: 'folder-form', class: 'stack compact',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const n = name.value.trim();
        if (!n) { name.focus(); return; }
        try {
          await this.api.post(path(cid, 'folders'), { name: n, parentId: parent.value || null });
          name.value = '';
          await this.loadFolders();
        } catch (e) { this.fail(e); }
      },
    },
    field('New folder', name),
    field('Inside', parent),
    h('button', { type: 'submit', class: 'secondary', id: 'folder-submit', text: 'Create folder' }));
  }

  canManageRoot(cid) {
    if (!this.info) return false;
    if (this.info.type === 'personal') return true;
    return (this.info.permissions || []).some((p) => p && (p.channelId === cid || p.channelId === '*')
      && p.level === 'manage' && !(Array.isArray(p.folderPermissions) && p.folderPermissions.length));
  }

  buildNoteForm() {
    this.nFolder = h('select', {
      id: 'note-folder',
      onchange: () => { this.folderChosen = true; this.updateNoteTime(this.channelId); },
    });
    this.nTime = h('input', {
      type: 'datetime-local', id: 'note-time',
      oninput: () => { this.timePrefilledFor = null; }, // the visitor's own time
    });
    this.nTimeField = field('Time (optional: now when empty)', this.nTime);
    this.nValue = h('textarea', { id: 'note-value', rows: 3 });
    this.nTags = h('input', { type: 'text', id: 'note-tags', autocomplete: 'off' });
    this.nDescription = h('input', { type: 'text', id: 'note-description', autocomplete: 'off' });
    this.nFile = h('input', { type: 'file', id: 'note-file' });
    this.nSubmit = h('button', { type: 'submit', id: 'note-submit', text: 'Add note' });
    this.nTagsHint = h('p', { class: 'hint', id: 'note-tags-hint' });
    this.nTags.setAttribute('aria-describedby', 'note-tags-hint');
    this.nFolderField = field('Folder', this.nFolder);
    const form = h('form', {
      id: 'add-note-form', class: 'stack',
      onsubmit: (ev) => { ev.preventDefault(); this.submitNote(); },
    },
    this.nFolderField,
    field('Note', this.nValue),
    this.nTimeField,
    h('div', { class: 'field' }, h('label', { for: 'note-tags', text: 'Tags (comma-separated)' }), this.nTags, this.nTagsHint),
    field('Description (optional)', this.nDescription),
    field('Attach a file (optional)', this.nFile),
    h('div', { class: 'row' }, this.nSubmit));
    return h('section', { class: 'panel', id: 'add-note', 'aria-labelledby': 'add-note-title', hidden: true },
      h('h2', { id: 'add-note-title', text: 'Add a note' }), form);
  }

  /**
   * Refreshes the note form's choices. The folder follows the folder
   * filter when the user picks a filter (followFilter) or has chosen none
   * yet; any other redraw (a live update, a reload) keeps the user's choice
   * while it is still allowed.
   */
  updateNoteForm({ followFilter = false } = {}) {
    const cid = this.channelId;
    const options = cid ? writableFolders(this.info, cid, this.folders) : [];
    this.noteSection.hidden = options.length === 0;
    if (options.length === 0) return;
    const previous = this.folderChosen ? this.nFolder.value : '';
    const filtered = this.filter.folder === undefined ? undefined : (this.filter.folder === null ? '\u0000null' : this.filter.folder);
    this.nFolder.replaceChildren(...options.map((o) => h('option', {
      value: o.id === null ? '\u0000null' : o.id,
      text: `${'\u00a0\u00a0'.repeat(o.depth)}${o.name}`,
    })));
    const values = options.map((o) => (o.id === null ? '\u0000null' : o.id));
    let chosen;
    if (followFilter && values.includes(filtered)) {
      chosen = filtered;
      this.folderChosen = false;
    } else if (values.includes(previous)) {
      chosen = previous;
    } else {
      chosen = values.includes(filtered) ? filtered : values[0];
      this.folderChosen = false;
    }
    this.nFolder.value = chosen;
    this.updateNoteTime(cid);
    this.nFolderField.hidden = options.length === 1 && options[0].id === null;
    const req = requiredTags(this.info, cid);
    if (req) {
      this.nTagsHint.textContent = `This access only accepts events tagged with one of: ${req.join(', ')}.`;
      if (!this.nTags.value) this.nTags.value = req[0];
    } else {
      this.nTagsHint.textContent = '';
    }
    const frames = timeFrames(this.info, cid);
    if (frames.length) {
      const f = frames[0];
      const parts = [];
      if (f.from !== null && f.from !== undefined) parts.push(`from ${fmt.dateTimeLabel(f.from)}`);
      if (f.to !== null && f.to !== undefined) parts.push(`until ${fmt.dateTimeLabel(f.to)}`);
      if (parts.length) this.nTagsHint.textContent += ` Shared time frame: ${parts.join(' ')}.`;
    }
  }

  /**
   * A share limited to a time frame accepts only events inside it: when now
   * is outside, the time field starts at the frame's nearest bound (a note
   * dated now would be refused).
   */
  updateNoteTime(cid) {
    const folderId = this.noteFolderId();
    const key = `${cid}\u0000${folderId}`;
    if (this.timePrefilledFor && this.timePrefilledFor !== key) {
      // Filled for another channel's or folder's frame: not this one's.
      this.nTime.value = '';
      this.timePrefilledFor = null;
    }
    if (this.nTime.value) return;
    const frames = writeFrames(this.info, cid, folderId, this.folders);
    const now = Date.now() / 1000;
    const has = (x) => x !== null && x !== undefined;
    const inside = (f) => (!has(f.from) || now >= f.from) && (!has(f.to) || now <= f.to);
    if (!frames || frames.some(inside)) return; // now is allowed
    const f = frames[0];
    if (has(f.to) && now > f.to) {
      this.nTime.value = fmt.toLocalInput(Math.floor(f.to / 60) * 60);
    } else if (has(f.from) && now < f.from) {
      this.nTime.value = fmt.toLocalInput(Math.ceil(f.from / 60) * 60);
    }
    if (this.nTime.value) this.timePrefilledFor = key;
  }

  /** The folder chosen in the note form (null: without folder). */
  noteFolderId() {
    const v = this.nFolder.value;
    return v === '\u0000null' || v === '' ? null : v;
  }

  async submitNote() {
    const cid = this.channelId;
    if (!cid) return;
    const value = this.nValue.value;
    const file = this.nFile.files && this.nFile.files[0];
    if (!value.trim() && !file) {
      this.onError(new Error('Write a note or choose a file to attach.'));
      this.nValue.focus();
      return;
    }
    const folderId = this.noteFolderId();
    const event = { type: { class: 'note', format: 'txt' }, tags: fmt.parseTags(this.nTags.value), folderId };
    if (value.trim()) event.value = value;
    const description = this.nDescription.value.trim();
    if (description) event.description = description;
    const time = fmt.fromLocalInput(this.nTime.value);
    if (time !== null) event.time = time;
    this.nSubmit.disabled = true;
    this.nSubmit.setAttribute('aria-busy', 'true');
    try {
      if (file) {
        const form = new FormData();
        form.append('event', JSON.stringify(event));
        form.append(attachmentKey(file.name), file, file.name || 'file');
        await this.api.request('POST', path(cid, 'events'), { form });
      } else {
        await this.api.post(path(cid, 'events'), event);
      }
      this.nValue.value = '';
      this.nDescription.value = '';
      this.nFile.value = '';
      this.nTime.value = '';
      this.timePrefilledFor = null;
      this.updateNoteTime(cid);
      // Tags do not carry over to the next note, except the one a
      // tag-restricted access needs.
      const req = requiredTags(this.info, cid);
      this.nTags.value = req ? req[0] : '';
      this.timelineStatus.textContent = 'Note added.';
      await this.loadEvents();
    } catch (e) {
      this.fail(e);
    } finally {
      this.nSubmit.disabled = false;
      this.nSubmit.removeAttribute('aria-busy');
    }
  }

  // ---------------------------------------------------------------- data

  async start() {
    await this.loadChannels(true);
  }

  /** Reloads everything (after a reconnect or a change of scope). */
  async reload() {
    await this.loadChannels(true);
  }

  setInfo(info) {
    this.info = info;
    this.updateNoteForm();
    this.renderFolders();
    this.renderTimeline();
  }

  async loadChannels(withData = false) {
    const seq = ++this.seq.channels;
    let list;
    try {
      list = await this.api.get('channels');
    } catch (e) {
      this.fail(e);
      return;
    }
    if (seq !== this.seq.channels || this.destroyed) return;
    this.channels = Array.isArray(list) ? list.filter((c) => c && !c.trashed) : [];
    let changed = false;
    if (!this.channels.some((c) => c.id === this.channelId)) {
      this.channelId = this.channels.length ? this.channels[0].id : null;
      this.resetChannelState();
      changed = true;
    }
    this.renderChannels();
    if (changed || withData) await this.loadChannelData();
  }

  resetChannelState() {
    this.folders = indexFolders([]);
    this.filter.folder = undefined;
    this.events = [];
    this.eventsLoaded = false;
    this.editing = null;
    this.limit = PAGE;
  }

  async selectChannel(id) {
    if (id === this.channelId) return;
    this.channelId = id;
    this.resetChannelState();
    this.renderChannels();
    this.renderFolders();
    this.renderTimeline();
    await this.loadChannelData();
  }

  async loadChannelData() {
    await Promise.all([this.loadFolders(), this.loadEvents()]);
  }

  async loadFolders() {
    const seq = ++this.seq.folders;
    const cid = this.channelId;
    let tree = [];
    if (cid) {
      try {
        tree = await this.api.get(path(cid, 'folders'));
      } catch (e) {
        if (seq === this.seq.folders) this.fail(e);
        return;
      }
    }
    if (seq !== this.seq.folders || this.destroyed || cid !== this.channelId) return;
    this.folders = indexFolders(Array.isArray(tree) ? tree : []);
    const f = this.filter.folder;
    if (f !== undefined && f !== null && !this.folders.byId.has(f)) {
      this.filter.folder = undefined;
      this.loadEvents();
    }
    this.renderFolders();
    this.updateNoteForm();
    this.renderTimeline();
  }

  /** Coalesces bursts of notifications into one reload. */
  scheduleEvents() {
    clearTimeout(this.eventsTimer);
    this.eventsTimer = setTimeout(() => this.loadEvents(), 150);
  }

  eventsQuery() {
    const q = { limit: this.limit + 1, state: this.filter.state };
    const { from, to } = this.filter;
    if (from !== null) q.fromTime = from;
    // With only toTime the API reads the 24 h before it; the user asked for "everything before".
    if (to !== null) { q.toTime = to; if (from === null) q.fromTime = 0; }
    if (this.filter.folder !== undefined) q.onlyFolders = [this.filter.folder];
    if (this.filter.tags.length) q.tags = this.filter.tags;
    return q;
  }

  async loadEvents() {
    const seq = ++this.seq.events;
    const cid = this.channelId;
    if (!cid) {
      this.events = [];
      this.eventsLoaded = true;
      this.renderTimeline();
      return;
    }
    this.timelineEl.setAttribute('aria-busy', 'true');
    let list;
    try {
      list = await this.api.get(path(cid, 'events'), this.eventsQuery());
    } catch (e) {
      if (seq !== this.seq.events || this.destroyed) return;
      this.timelineEl.setAttribute('aria-busy', 'false');
      if (e instanceof ApiError && e.id === 'unknown-folder' && this.filter.folder !== undefined) {
        this.filter.folder = undefined;
        this.renderFolders();
        this.loadEvents();
        return;
      }
      this.fail(e);
      return;
    }
    if (seq !== this.seq.events || this.destroyed || cid !== this.channelId) return;
    if (list && !Array.isArray(list) && Array.isArray(list.events)) list = list.events;
    list = Array.isArray(list) ? list : [];
    this.hasMore = list.length > this.limit;
    this.events = list.slice(0, this.limit);
    this.eventsLoaded = true;
    this.timelineEl.setAttribute('aria-busy', 'false');
    this.renderTimeline();
  }

  /** Notification frame from the socket. */
  onNotify(msg) {
    if (this.destroyed) return;
    switch (msg.type) {
      case 'eventsChanged':
        if (!msg.channelId || msg.channelId === this.channelId) this.scheduleEvents();
        break;
      case 'foldersChanged':
        if (!msg.channelId || msg.channelId === this.channelId) {
          this.loadFolders();
          this.scheduleEvents();
        }
        break;
      case 'channelsChanged':
        this.loadChannels();
        this.scheduleEvents();
        break;
      case 'reconnected':
        this.reload();
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- rendering

  renderChannels() {
    const items = this.channels.map((c) => h('li', null,
      h('button', {
        type: 'button', class: 'pick', 'aria-pressed': String(c.id === this.channelId),
        dataset: { channelId: c.id, key: `channel:${c.id}` },
        onclick: () => this.selectChannel(c.id),
      }, c.name || c.id)));
    if (items.length === 0) {
      items.push(h('li', { class: 'muted', text: this.owner ? 'No channels yet. Create one below.' : 'No channel is shared with this access.' }));
    }
    replaceChildren(this.channelsEl, items);
  }

  renderFolders() {
    const cid = this.channelId;
    if (!cid) {
      replaceChildren(this.foldersEl, h('p', { class: 'muted', text: 'No channel selected.' }));
      replaceChildren(this.folderFormWrap);
      return;
    }
    const sel = this.filter.folder;
    const btn = (key, label, value, extra = {}) => h('button', {
      type: 'button', class: 'pick', 'aria-pressed': String(sel === value),
      dataset: { key, ...extra },
      onclick: () => {
        this.filter.folder = value;
        this.limit = PAGE;
        this.renderFolders();
        this.updateNoteForm({ followFilter: true });
        this.loadEvents();
      },
    }, label);
    const tree = (nodes) => h('ul', { class: 'tree' }, (nodes || []).map((f) => h('li', null,
      btn(`folder:${f.id}`, f.name || f.id, f.id, { folderId: f.id }),
      f.children && f.children.length ? tree(f.children) : null)));
    const roots = this.folders.flat.filter((x) => x.depth === 0).map((x) => x.folder);
    replaceChildren(this.foldersEl,
      h('ul', { class: 'tree', 'aria-label': 'Folder filter' },
        h('li', null, btn('folder:*', 'All folders', undefined)),
        levelFor(this.info, cid, null, this.folders) ? h('li', null, btn('folder:null', 'Without folder', null)) : null),
      roots.length ? tree(roots) : h('p', { class: 'muted', text: 'No folders in this channel.' }));
    replaceChildren(this.folderFormWrap, this.buildFolderForm());
  }

  filterSummary() {
    const parts = [];
    const f = this.filter.folder;
    if (f === null) parts.push('without folder');
    else if (f !== undefined) parts.push(`in ${this.folders.byId.get(f)?.folder.name || f}`);
    if (this.filter.tags.length) parts.push(`tagged ${this.filter.tags.join(', ')}`);
    if (this.filter.from !== null) parts.push(`from ${fmt.dateTimeLabel(this.filter.from)}`);
    if (this.filter.to !== null) parts.push(`until ${fmt.dateTimeLabel(this.filter.to)}`);
    if (this.filter.state === 'trashed') parts.push('in the trash');
    if (this.filter.state === 'all') parts.push('including trashed');
    return parts.join(', ');
  }

  renderTimeline() {
    if (this.destroyed) return;
    if (this.editing) {
      // Keep the edit form (and its focus) intact; render when editing ends.
      this.renderDeferred = true;
      return;
    }
    this.renderDeferred = false;
    this.moreBtn.hidden = !this.hasMore;
    if (!this.channelId) {
      replaceChildren(this.timelineEl);
      this.timelineStatus.textContent = this.channels.length ? '' : 'Nothing to show yet.';
      return;
    }
    if (!this.eventsLoaded) {
      this.timelineStatus.textContent = 'Loading events…';
      return;
    }
    const summary = this.filterSummary();
    const n = this.events.length;
    this.timelineStatus.textContent = n === 0
      ? `No events${summary ? ` ${summary}` : ''}.`
      : `${n}${this.hasMore ? '+' : ''} event${n === 1 ? '' : 's'}${summary ? ` ${summary}` : ''}.`;

    const groups = [];
    let current = null;
    for (const e of this.events) {
      const key = fmt.dayKey(e.time);
      if (!current || current.key !== key) {
        current = { key, time: e.time, events: [] };
        groups.push(current);
      }
      current.events.push(e);
    }
    replaceChildren(this.timelineEl, groups.map((g) => h('section', { class: 'day', dataset: { day: g.key } },
      h('h3', { class: 'day-title', text: fmt.dayLabel(g.time) }),
      h('ol', { class: 'events' }, g.events.map((e) => this.renderEvent(e))))));
  }

  renderEvent(e) {
    const cid = e.channelId || this.channelId;
    const folderName = e.folderId ? (this.folders.byId.get(e.folderId)?.folder.name || null) : null;
    const type = e.type && typeof e.type === 'object' ? `${e.type.class}/${e.type.format}` : String(e.type || '');
    const isRunning = Object.prototype.hasOwnProperty.call(e, 'duration') && e.duration === null;
    const isPeriod = typeof e.duration === 'number';
    const label = `${type} at ${fmt.timeLabel(e.time)}`;

    const li = h('li', {
      class: `event${e.trashed ? ' trashed' : ''}${isRunning ? ' running' : ''}`,
      dataset: { id: e.id },
    });
    if (this.editing === e.id) {
      li.append(this.buildEditForm(e));
      return li;
    }

    const head = h('div', { class: 'event-head' },
      h('time', { class: 'event-time', datetime: fmt.toDate(e.time).toISOString(), title: fmt.dateTimeLabel(e.time), text: fmt.timeLabel(e.time) }),
      h('span', { class: 'event-type', text: type }),
      folderName ? h('span', { class: 'event-folder', text: folderName }) : null,
      e.trashed ? h('span', { class: 'badge badge-warn', text: 'Trashed' }) : null,
      isRunning ? h('span', { class: 'badge badge-live', text: 'Running' }) : null);

    const valueText = fmt.formatValue(e.value);
    const valueEl = h(typeof e.value === 'object' && e.value !== null ? 'pre' : 'p', {
      class: `event-value${e.value === undefined ? ' empty' : ''}`,
      text: valueText,
    });

    let period = null;
    if (isRunning) {
      period = h('p', { class: 'event-period running' },
        `Running since ${fmt.dateTimeLabel(e.time)} (`,
        h('span', { class: 'running-elapsed', dataset: { start: String(e.time) }, text: fmt.formatDuration(Date.now() / 1000 - e.time) }),
        ' so far)');
    } else if (isPeriod) {
      period = h('p', { class: 'event-period', text: `Lasted ${fmt.formatDuration(e.duration)}, until ${fmt.dateTimeLabel(e.time + e.duration)}` });
    }

    const description = e.description ? h('p', { class: 'event-description', text: e.description }) : null;
    const tags = Array.isArray(e.tags) && e.tags.length
      ? h('ul', { class: 'event-tags', 'aria-label': 'Tags' }, e.tags.map((t) => h('li', null,
        h('button', {
          type: 'button', class: 'tag', dataset: { key: `tag:${e.id}:${t}` },
          title: `Show only events tagged ${t}`,
          onclick: () => this.addTagFilter(t),
        }, t, srOnly(' (filter by this tag)')))))
      : null;

    const attachments = this.renderAttachments(e, cid);

    let actions = null;
    if (canContribute(this.info, cid, e.folderId ?? null, this.folders)) {
      actions = h('div', { class: 'event-actions' },
        e.trashed
          ? h('button', {
            type: 'button', class: 'event-restore secondary', dataset: { key: `restore:${e.id}` },
            onclick: () => this.restore(e),
          }, 'Restore', srOnly(` ${label}`))
          : [
            h('button', {
              type: 'button', class: 'event-edit secondary', dataset: { key: `edit:${e.id}` },
              onclick: () => { this.editing = e.id; this.rerenderEvent(e, true); },
            }, 'Edit', srOnly(` ${label}`)),
            h('button', {
              type: 'button', class: 'event-trash danger', dataset: { key: `trash:${e.id}` },
              onclick: () => this.trash(e),
            }, 'Trash', srOnly(` ${label}`)),
          ]);
    }

    li.append(...[head, valueEl, period, description, tags, attachments, actions].filter(Boolean));
    return li;
  }

  /** Replaces one event element in place (entering edit mode). */
  rerenderEvent(e, focusForm) {
    const old = this.timelineEl.querySelector(`.event[data-id="${CSS.escape(e.id)}"]`);
    const fresh = this.renderEvent(e);
    if (old) old.replaceWith(fresh);
    if (focusForm) fresh.querySelector('textarea, input, select')?.focus();
  }

  renderAttachments(e, cid) {
    const entries = Object.entries(e.attachments || {});
    if (entries.length === 0) return null;
    return h('div', { class: 'event-attachments' }, entries.map(([key, meta]) => {
      const m = meta || {};
      const name = m.fileName || key;
      const size = m.size !== undefined ? fmt.formatBytes(m.size) : '';
      const download = h('button', {
        type: 'button', class: 'attachment-download secondary', dataset: { key: `dl:${e.id}:${key}` },
        onclick: () => this.download(e, cid, key, name),
      }, `Download ${name}${size ? ` (${size})` : ''}`);
      if (typeof m.type === 'string' && m.type.startsWith('image/')) {
        const img = h('img', { class: 'attachment-image', alt: name, decoding: 'async' });
        const fig = h('figure', { class: 'attachment' }, img, h('figcaption', null, download));
        this.blobURL(e, cid, key, m).then((url) => {
          if (!this.destroyed) img.src = url;
        }, () => {
          img.replaceWith(h('p', { class: 'muted', text: `The image ${name} could not be loaded.` }));
        });
        return fig;
      }
      return h('div', { class: 'attachment' }, download);
    }));
  }

  attachmentPath(e, cid, key) {
    return path(cid, 'events', e.id, key);
  }

  blobURL(e, cid, key, meta) {
    const k = `${cid}\u0000${e.id}\u0000${key}\u0000${meta.digest || ''}\u0000${meta.size ?? ''}`;
    let p = this.blobs.get(k);
    if (!p) {
      p = this.api.request('GET', this.attachmentPath(e, cid, key), { raw: true })
        .then((res) => res.blob())
        .then((b) => URL.createObjectURL(b));
      p.catch(() => this.blobs.delete(k));
      this.blobs.set(k, p);
    }
    return p;
  }

  async download(e, cid, key, name) {
    try {
      const res = await this.api.request('GET', this.attachmentPath(e, cid, key), { raw: true });
      const blob = await res.blob();
      if (this.destroyed) return;
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: name, class: 'sr-only' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      this.fail(err);
    }
  }

  buildEditForm(e) {
    const cid = e.channelId || this.channelId;
    const isText = e.value === undefined || typeof e.value === 'string';
    const value = h('textarea', {
      class: 'edit-value', rows: isText ? 3 : 5,
      value: isText ? (e.value || '') : JSON.stringify(e.value, null, 2),
    });
    const tags = h('input', { type: 'text', class: 'edit-tags', autocomplete: 'off', value: (e.tags || []).join(', ') });
    const description = h('input', { type: 'text', class: 'edit-description', autocomplete: 'off', value: e.description || '' });
    const folderOptions = writableFolders(this.info, cid, this.folders);
    const current = e.folderId ?? null;
    if (!folderOptions.some((o) => o.id === current)) {
      folderOptions.unshift({ id: current, name: this.folders.byId.get(current)?.folder.name || current || 'No folder', depth: 0 });
    }
    const folder = h('select', { class: 'edit-folder' },
      folderOptions.map((o) => h('option', {
        value: o.id === null ? '\u0000null' : o.id,
        text: `${'\u00a0\u00a0'.repeat(o.depth)}${o.name}`,
      })));
    folder.value = current === null ? '\u0000null' : current;

    const cancel = () => {
      this.editing = null;
      this.renderTimeline();
      this.focusKey(`edit:${e.id}`);
    };
    const form = h('form', {
      class: 'event-edit-form stack',
      'aria-label': 'Edit event',
      onkeydown: (ev) => { if (ev.key === 'Escape') { ev.preventDefault(); cancel(); } },
      onsubmit: async (ev) => {
        ev.preventDefault();
        const patch = {};
        if (isText) {
          if (value.value !== (e.value || '') ) patch.value = value.value;
        } else {
          let parsed;
          try {
            parsed = JSON.parse(value.value);
          } catch {
            this.onError(new Error('The value is not valid JSON.'));
            value.focus();
            return;
          }
          if (!sameJSON(parsed, e.value)) patch.value = parsed;
        }
        const newTags = fmt.parseTags(tags.value);
        if (!sameJSON(newTags, e.tags || [])) patch.tags = newTags;
        if (description.value.trim() !== (e.description || '')) patch.description = description.value.trim();
        const newFolder = folder.value === '\u0000null' ? null : folder.value;
        if (newFolder !== current) patch.folderId = newFolder;
        if (Object.keys(patch).length === 0) { cancel(); return; }
        save.disabled = true;
        try {
          await this.api.put(path(cid, 'events', e.id), patch);
          this.editing = null;
          this.timelineStatus.textContent = 'Event saved.';
          await this.loadEvents();
          this.focusKey(`edit:${e.id}`);
        } catch (err) {
          save.disabled = false;
          this.fail(err);
        }
      },
    });
    const save = h('button', { type: 'submit', class: 'edit-save', text: 'Save' });
    form.append(
      field(isText ? 'Note' : 'Value (JSON)', value),
      field('Tags (comma-separated)', tags),
      field('Description', description),
      field('Folder', folder),
      h('div', { class: 'row' }, save,
        h('button', { type: 'button', class: 'edit-cancel secondary', text: 'Cancel', onclick: cancel })));
    return form;
  }

  focusKey(key) {
    const el = this.timelineEl.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (el) el.focus();
  }

  async trash(e) {
    if (this.busy.has(e.id)) return;
    this.busy.add(e.id);
    const cid = e.channelId || this.channelId;
    try {
      await this.api.del(path(cid, 'events', e.id));
      this.timelineStatus.textContent = 'Event moved to the trash.';
      await this.loadEvents();
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy.delete(e.id);
    }
  }

  async restore(e) {
    if (this.busy.has(e.id)) return;
    this.busy.add(e.id);
    const cid = e.channelId || this.channelId;
    try {
      await this.api.put(path(cid, 'events', e.id), { trashed: false });
      this.timelineStatus.textContent = 'Event restored.';
      await this.loadEvents();
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy.delete(e.id);
    }
  }

  tick() {
    const now = Date.now() / 1000;
    for (const el of this.timelineEl.querySelectorAll('.running-elapsed')) {
      el.textContent = fmt.formatDuration(now - Number(el.dataset.start));
    }
  }

  /** Describes this access for the page header. */
  static describeAccess(info) {
    if (!info) return '';
    if (info.type === 'personal') return 'full access';
    const levels = (info.permissions || []).map((p) => p && p.level).filter(Boolean);
    let best = null;
    for (const l of levels) if ((RANK[l] || 0) > (RANK[best] || 0)) best = l;
    return LEVEL_LABEL[best] || 'read only';
  }
}

/**
 * The attachment key for a file: its name with what a key may not hold
 * (`/ % \\`, quotes, control characters) replaced, at most 200 bytes,
 * never "event" (the multipart part holding the event) or a dot path. The
 * file keeps its own name as the attachment's file name.
 */
export function attachmentKey(name) {
  const chars = Array.from((name || 'file').replace(/[/%\\"\u0000-\u001f\u007f-\u009f\ufffd]/g, '_'));
  const bytes = new TextEncoder();
  while (bytes.encode(chars.join('')).length > 200) chars.pop(); // whole characters
  let key = chars.join('');
  if (!key || key === 'event' || key === '.' || key === '..') key = 'file';
  return key;
}
