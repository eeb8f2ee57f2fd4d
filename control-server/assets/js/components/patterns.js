// One fill per model family, each a colour from the Okabe–Ito palette (safe
// for the common colour blindnesses) *and* its own pattern, defined once
// per page and shared by the chart and its legend.

import { svg } from '../dom.js';

export const FAMILY_STYLE = {
  opus: { colour: '#0072B2', pattern: 'solid', label: 'Opus' },
  sonnet: { colour: '#E69F00', pattern: 'stripes', label: 'Sonnet' },
  haiku: { colour: '#009E73', pattern: 'dots', label: 'Haiku' },
  other: { colour: '#CC79A7', pattern: 'grid', label: 'Other' },
};

function overlay(kind) {
  const ink = { stroke: '#ffffff', 'stroke-width': 1.6, 'stroke-opacity': 0.85 };
  switch (kind) {
    case 'stripes':
      return [svg('path', { d: 'M-1 1 l2 -2 M0 8 l8 -8 M7 9 l2 -2', ...ink })];
    case 'dots':
      return [svg('circle', { cx: 4, cy: 4, r: 1.6, fill: '#ffffff', 'fill-opacity': 0.9 })];
    case 'grid':
      return [svg('path', { d: 'M0 4 H8 M4 0 V8', ...ink })];
    default:
      return [];
  }
}

let defined = false;

/** The id to use in `fill="url(#…)"` for a family. */
export function familyFill(family) {
  if (!defined) {
    defined = true;
    const patterns = Object.entries(FAMILY_STYLE).map(([name, style]) =>
      svg(
        'pattern',
        { id: `fill-${name}`, width: 8, height: 8, patternUnits: 'userSpaceOnUse' },
        svg('rect', { width: 8, height: 8, fill: style.colour }),
        ...overlay(style.pattern),
      ),
    );
    document.body.append(
      svg('svg', { class: 'svg-defs', 'aria-hidden': 'true', focusable: 'false' }, svg('defs', {}, patterns)),
    );
  }
  return `url(#fill-${FAMILY_STYLE[family] ? family : 'other'})`;
}

/** A small legend swatch for a family. */
export function swatch(family) {
  return svg(
    'svg',
    { class: 'swatch', viewBox: '0 0 14 14', 'aria-hidden': 'true' },
    svg('rect', { width: 14, height: 14, rx: 2, fill: familyFill(family) }),
  );
}
