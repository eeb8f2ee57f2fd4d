// A user's limits: the editor, a preview of what the person would see with
// the edited limits (from `POST /users/:id/preview`, which evaluates them
// against their real usage, their share of the subscription's windows
// included), and saving them in one go.

import { post, put } from '../api.js';
import { h, replace } from '../dom.js';
import { FAMILIES, reasonLabel } from '../rules.js';
import { FAMILY_STYLE } from './patterns.js';
import { LimitsEditor } from './limits-editor.js';
import { shareMeters } from './limits.js';
import { notify } from './notices.js';

const PREVIEW_DELAY_MS = 350;

export class LimitsPanel {
  constructor(user, { onSaved }) {
    this.user = user;
    this.onSaved = onSaved;
    this.saved = user.limits;
    this.problem = h('p', { class: 'form__problem', role: 'alert', hidden: true, id: 'limits-problem' });
    this.preview = h('div', { class: 'preview', id: 'limits-preview', 'aria-live': 'polite' });
    this.save = h(
      'button',
      { type: 'submit', class: 'button button--primary', id: 'save-limits', disabled: true },
      'Save limits',
    );
    this.reset = h('button', { type: 'button', class: 'button', disabled: true }, 'Discard changes');
    this.editor = new LimitsEditor({
      rules: user.limits,
      onChange: (rules, valid) => this.changed(rules, valid),
      label: `Limits of ${user.name}`,
    });
    this.reset.addEventListener('click', () => {
      this.editor.setRules(this.saved);
      this.changed(this.editor.value(), true);
      this.dirty(false);
    });
    const form = h(
      'form',
      { class: 'limits-form', novalidate: true },
      this.editor.element,
      this.problem,
      h('div', { class: 'form__actions' }, this.save, this.reset),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    this.element = h(
      'section',
      { class: 'panel limits-panel', 'aria-labelledby': 'limits-title' },
      h('h2', { id: 'limits-title', class: 'panel__title' }, 'Limits'),
      form,
      h('h3', { class: 'panel__subtitle' }, 'Preview'),
      this.preview,
    );
    this.timer = null;
    this.requested = 0;
    replace(this.preview, h('p', { class: 'muted' }, 'Loading the preview…'));
    // What the person would see right now, before anything is edited.
    this.fetchPreview(this.editor.value());
  }

  dirty(flag) {
    this.save.disabled = !flag;
    this.reset.disabled = !flag;
  }

  changed(rules, valid) {
    this.dirty(true);
    this.problem.hidden = true;
    clearTimeout(this.timer);
    if (!valid) {
      this.save.disabled = true;
      replace(this.preview, h('p', { class: 'muted' }, 'Fix the marked fields to see the preview.'));
      return;
    }
    this.timer = setTimeout(() => this.fetchPreview(rules), PREVIEW_DELAY_MS);
  }

  async fetchPreview(rules) {
    const ticket = ++this.requested;
    try {
      const answer = await post(`/users/${this.user.id}/preview`, { limits: rules });
      if (ticket === this.requested) this.showPreview(answer);
    } catch (error) {
      if (ticket === this.requested) replace(this.preview, h('p', { class: 'form__problem' }, error.message));
    }
  }

  showPreview(answer) {
    const decisions = FAMILIES.filter((f) => answer.decisions[f]).map((f) => [f, answer.decisions[f]]);
    const blocked = decisions.filter(([, d]) => !d.allowed);
    const list = h(
      'ul',
      { class: 'decisions' },
      decisions.map(([family, d]) =>
        h(
          'li',
          { class: `decision decision--${d.allowed ? 'allowed' : 'blocked'}`, dataset: { family } },
          h('span', { class: 'decision__icon', 'aria-hidden': 'true' }, d.allowed ? '✓' : '⊘'),
          h('strong', {}, FAMILY_STYLE[family]?.label ?? family),
          d.allowed
            ? ` allowed now (a prompt costs ${d.cost} credit${d.cost === 1 ? '' : 's'})`
            : ` blocked now: ${reasonLabel(d.reason)}`,
        ),
      ),
    );
    // The first blocked model's message open, the others one click away.
    const messages = blocked.map(([family, d], index) =>
      h(
        'details',
        { class: 'block-message', open: index === 0 },
        h('summary', {}, `What ${this.user.name} would see when prompting ${FAMILY_STYLE[family]?.label ?? family}`),
        h('pre', { class: 'block-message__text' }, d.message),
      ),
    );
    const note = h(
      'p',
      { class: 'muted' },
      blocked.length
        ? 'Decided with the edited limits and today’s real usage; nothing is saved until you press “Save limits”.'
        : `With these limits ${this.user.name} may prompt every model right now.`,
    );
    const shares = shareMeters(answer.report);
    replace(
      this.preview,
      list,
      shares.length ? h('div', { class: 'preview__shares', id: 'preview-shares' }, shares) : null,
      messages,
      note,
    );
  }

  async submit() {
    if (!this.editor.valid()) return;
    this.save.disabled = true;
    try {
      const answer = await put(`/users/${this.user.id}`, { limits: this.editor.value() });
      this.saved = answer.limits;
      this.editor.setRules(this.saved);
      this.dirty(false);
      notify('Limits saved. Devices pick them up within a second.', 'success');
      this.onSaved?.(answer.user);
    } catch (error) {
      this.problem.textContent = error.message;
      this.problem.hidden = false;
      this.save.disabled = false;
    }
  }
}
