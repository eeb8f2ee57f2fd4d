// A copy button for a command or token. The Clipboard API needs a secure
// context (https or localhost); on a plain-http LAN address the text is
// selected and copied the old way.

import { h } from '../dom.js';
import { notify } from './notices.js';

async function copyText(text, source) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return true;
  }
  source.focus();
  source.select?.();
  return document.execCommand('copy');
}

/** A read-only field holding `text` and a button that copies it. */
export function copyField(text, { label, multiline = false }) {
  const field = h(multiline ? 'textarea' : 'input', {
    class: 'copy__field',
    readonly: true,
    'aria-label': label,
    rows: multiline ? 3 : undefined,
    spellcheck: 'false',
  });
  field.value = text;
  const button = h('button', { type: 'button', class: 'button button--primary copy__button' }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      const copied = await copyText(text, field);
      if (!copied) throw new Error('copy refused');
      button.textContent = 'Copied ✓';
      setTimeout(() => (button.textContent = 'Copy'), 2000);
    } catch {
      field.select?.();
      notify('Could not copy automatically: the text is selected, press Ctrl+C (⌘C).', 'error');
    }
  });
  return h('div', { class: 'copy' }, field, button);
}
