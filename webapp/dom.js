// Small DOM helpers. Content is always set as text, never parsed as HTML.

/**
 * Creates an element.
 * props: class, text, dataset, on<Event> handlers, boolean attributes (true/false),
 * DOM properties (value, checked...), other attributes as strings.
 * Children: nodes, strings, arrays, null/false (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') value = v;
    else if (k === 'checked' || k === 'selected' || k === 'multiple') el[k] = !!v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the children of el, keeping keyboard focus on the element with the same data-key if any. */
export function replaceChildren(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset?.key : undefined;
  el.replaceChildren();
  append(el, children);
  if (key) {
    const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

let uid = 0;
/** A unique id for label/aria wiring. */
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field. `input` is an element; its id is set if missing. */
export function field(labelText, input, hint) {
  if (!input.id) input.id = nextId('field');
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${input.id}-hint`, text: hint });
    input.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: input.id, text: labelText }), input, hintEl);
}

/** Copies text to the clipboard; falls back to selecting the input so the user can copy it. */
export async function copyText(text, input) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall back */ }
  if (input) {
    input.focus();
    input.select();
    try {
      if (document.execCommand && document.execCommand('copy')) return true;
    } catch { /* selection stays for manual copy */ }
  }
  return false;
}
