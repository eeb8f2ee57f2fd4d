// A person's use since midnight, by model: prompts, credits and tokens
// (from the usage report's `today`).

import { h } from '../dom.js';
import { compact, number } from '../format.js';
import { FAMILIES } from '../rules.js';
import { tokenTotal } from './limits.js';
import { FAMILY_STYLE } from './patterns.js';

export function todayTable(report) {
  const today = report?.today ?? {};
  return h(
    'table',
    { class: 'table table--compact' },
    h('caption', { class: 'visually-hidden' }, 'Use since midnight by model'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Model', 'Prompts', 'Credits', 'Tokens'].map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    h(
      'tbody',
      {},
      FAMILIES.map((f) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, FAMILY_STYLE[f].label),
          h('td', {}, number(today[f]?.prompts)),
          h('td', {}, number(today[f]?.credits)),
          h('td', {}, compact(tokenTotal(today[f]))),
        ),
      ),
    ),
  );
}
