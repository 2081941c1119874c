// What the current access may do (SPEC §2), computed from GET access-info.
// The server stays the judge: this only decides which controls to show.

export const RANK = { read: 1, contribute: 2, manage: 3 };

function maxLevel(a, b) {
  return (RANK[b] || 0) > (RANK[a] || 0) ? b : a;
}

/**
 * Index of a folder tree: id -> {folder, parentId, depth}. Also returns the
 * flattened list in tree order.
 */
export function indexFolders(tree) {
  const byId = new Map();
  const flat = [];
  const walk = (nodes, parentId, depth) => {
    for (const f of nodes || []) {
      byId.set(f.id, { folder: f, parentId, depth });
      flat.push({ folder: f, depth });
      walk(f.children, f.id, depth + 1);
    }
  };
  walk(tree, null, 0);
  return { byId, flat };
}

/**
 * Highest level ('read' | 'contribute' | 'manage' | null) that the access has
 * on items of channel `channelId` in folder `folderId` (null = no folder).
 * `folders` is indexFolders(...) of that channel's tree (to walk ancestors).
 */
export function levelFor(info, channelId, folderId, folders) {
  if (!info) return null;
  if (info.type === 'personal') return 'manage';
  let best = null;
  for (const p of info.permissions || []) {
    if (!p || (p.channelId !== channelId && p.channelId !== '*')) continue;
    const fps = p.folderPermissions;
    if (!Array.isArray(fps) || fps.length === 0) {
      best = maxLevel(best, p.level);
      continue;
    }
    if (folderId === null || folderId === undefined) {
      const fp = fps.find((x) => x && x.folderId === null);
      if (fp) best = maxLevel(best, fp.level || p.level);
      continue;
    }
    // Walk up from the folder; a folder grant covers its descendants.
    let id = folderId;
    const seen = new Set();
    while (id !== null && id !== undefined && !seen.has(id)) {
      seen.add(id);
      const fp = fps.find((x) => x && x.folderId === id);
      if (fp) {
        best = maxLevel(best, fp.level || p.level);
        break;
      }
      const entry = folders && folders.byId.get(id);
      id = entry ? entry.parentId : null;
    }
  }
  return best;
}

export function canContribute(info, channelId, folderId, folders) {
  return (RANK[levelFor(info, channelId, folderId, folders)] || 0) >= RANK.contribute;
}

/** Highest level the access has anywhere in the channel (for labels). */
export function channelLevel(info, channelId) {
  if (!info) return null;
  if (info.type === 'personal') return 'manage';
  let best = null;
  for (const p of info.permissions || []) {
    if (!p || (p.channelId !== channelId && p.channelId !== '*')) continue;
    best = maxLevel(best, p.level);
    for (const fp of p.folderPermissions || []) best = maxLevel(best, fp && fp.level);
  }
  return best;
}

/**
 * Folders (and null = "no folder") where the access may add events, in tree order.
 * Returns [{id, name, depth}] where id null means "no folder".
 */
export function writableFolders(info, channelId, folders) {
  const out = [];
  if (canContribute(info, channelId, null, folders)) out.push({ id: null, name: 'No folder', depth: 0 });
  for (const { folder, depth } of folders.flat) {
    if (canContribute(info, channelId, folder.id, folders)) out.push({ id: folder.id, name: folder.name, depth });
  }
  return out;
}

/**
 * Tags that a new event must carry one of, when every entry covering the
 * channel is tag-restricted; otherwise null (no constraint).
 */
export function requiredTags(info, channelId) {
  if (!info || info.type === 'personal') return null;
  const entries = (info.permissions || []).filter((p) => p && (p.channelId === channelId || p.channelId === '*'));
  if (entries.length === 0) return null;
  const tags = [];
  for (const p of entries) {
    if (!Array.isArray(p.tags) || p.tags.length === 0) return null;
    for (const t of p.tags) if (!tags.includes(t)) tags.push(t);
  }
  return tags;
}

/** The time frame shared with this access for the channel, if every covering entry has one. */
export function timeFrames(info, channelId) {
  if (!info || info.type === 'personal') return [];
  return (info.permissions || [])
    .filter((p) => p && (p.channelId === channelId || p.channelId === '*') && p.timeFrame)
    .map((p) => p.timeFrame);
}

/**
 * The time frames within which this access may write an event in the
 * channel's folder (null: without folder): those of the entries that let it
 * contribute there, by the server's rule (levelFor, one entry at a time).
 * Null when it may write there at any time (a personal access, or such an
 * entry without a frame) or not at all.
 */
export function writeFrames(info, channelId, folderId, folders) {
  if (!info || info.type === 'personal') return null;
  const out = [];
  for (const p of info.permissions || []) {
    if (!p || (p.channelId !== channelId && p.channelId !== '*')) continue;
    const one = { type: info.type, permissions: [p] };
    if ((RANK[levelFor(one, channelId, folderId ?? null, folders)] || 0) < RANK.contribute) continue;
    if (!p.timeFrame) return null;
    out.push(p.timeFrame);
  }
  return out.length ? out : null;
}
