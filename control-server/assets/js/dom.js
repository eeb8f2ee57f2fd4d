// Builds DOM nodes from data. No HTML strings anywhere: text from the
// server always lands in text nodes and attributes, never in markup (the
// page's Trusted Types policy would refuse markup anyway).

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(node, attrs) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (key === 'text') {
      node.textContent = String(value);
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** An HTML element: `h('a', {href: '/x', class: 'y'}, 'text', child)`. */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element, same calling convention as `h`. */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

/** Replaces every child of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A unique id for label/aria wiring. */
let counter = 0;
export function uid(prefix = 'id') {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** Marks the page as rendered: for tests, the benchmark and screen readers. */
export function pageReady() {
  const main = document.getElementById('main');
  main?.removeAttribute('aria-busy');
  if (!document.body.dataset.ready) {
    document.body.dataset.ready = '1';
    performance.mark('ccgate:ready');
    // The task after the next frame starts runs once that frame (the first
    // one with the data) has been laid out and painted.
    requestAnimationFrame(() => setTimeout(() => performance.mark('ccgate:painted')));
  }
}
