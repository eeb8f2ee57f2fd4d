// How full a subscription's window is, as a badge: an icon, a word and a
// colour together (ok, warning, limited), so no one has to tell colours apart.

import { h } from '../dom.js';
import { LEVELS } from '../utilization.js';

export function levelBadge(level) {
  const { icon, word } = LEVELS[level] ?? LEVELS.unknown;
  return h(
    'span',
    { class: `level level--${level}`, dataset: { level } },
    h('span', { class: 'level__icon', 'aria-hidden': 'true' }, icon),
    h('span', { class: 'level__word' }, word),
  );
}
