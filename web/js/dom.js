// Tiny DOM helpers. Everything that shows server data goes through text nodes, never innerHTML.

/**
 * Create an element: h('button', {class: 'btn', onclick: fn}, 'Save').
 * Props: `class`, `dataset`, `on<event>` listeners, `value`/`checked`/`disabled`/`hidden`
 * (set as properties), anything else as an attribute (true → empty attribute, null/false → none).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'hidden' || key === 'selected') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Append children: strings and numbers become text, arrays are flattened, null is skipped. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
/** A document-unique id for label/aria wiring. */
export function uniqueId(prefix = 'sb') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field: label + control + optional hint/error line wired with aria-describedby. */
export function field({ label, control, hint, id }) {
  const controlId = id || control.id || uniqueId('field');
  control.id = controlId;
  const hintEl = h('p', { class: 'field-hint', id: `${controlId}-hint` }, hint || '');
  if (!hint) hintEl.hidden = true;
  control.setAttribute('aria-describedby', hintEl.id);
  const wrapper = h('div', { class: 'field' }, h('label', { for: controlId }, label), control, hintEl);
  return { wrapper, control, hint: hintEl };
}

/** Set a field hint's text and error state (and the control's aria-invalid). */
export function setHint(fieldParts, text, isError = false) {
  fieldParts.hint.textContent = text || '';
  fieldParts.hint.hidden = !text;
  fieldParts.hint.classList.toggle('is-error', !!isError);
  if (isError) fieldParts.control.setAttribute('aria-invalid', 'true');
  else fieldParts.control.removeAttribute('aria-invalid');
}
