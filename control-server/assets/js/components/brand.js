// ccgate's mark (three lanes and a gate), the same drawing as the favicon.

import { svg } from '../dom.js';

export function brandMark() {
  return svg(
    'svg',
    { class: 'brand__mark', viewBox: '0 0 32 32', width: 22, height: 22, 'aria-hidden': 'true', focusable: 'false' },
    svg('rect', { width: 32, height: 32, rx: 7, fill: '#1d3557', stroke: '#f1faee', 'stroke-width': 1.5 }),
    svg('path', { d: 'M9 22V10h2.5v12zm5.5 0V10H17v12zm5.5 0V10h2.5v12z', fill: '#f1faee' }),
    svg('path', { d: 'M6 16h20', stroke: '#e9c46a', 'stroke-width': 2.5 }),
  );
}
