// Settings → Agent updates: whether devices install the release this
// server serves by themselves (only a release signed with a key the
// machine trusts is installed). Disabled for viewers.

import { put } from '../api.js';
import { h } from '../dom.js';
import { canEdit } from '../session.js';
import { actionForm, field } from './form.js';

export function updatesForm(settings) {
  const control = h(
    'select',
    { id: 'auto-update' },
    [
      ['on', 'Install signed releases by themselves'],
      ['off', 'Leave devices on their version'],
    ].map(([key, text]) => h('option', { value: key }, text)),
  );
  control.value = settings.auto_update === false ? 'off' : 'on';
  return actionForm({
    id: 'updates-form',
    disabled: !canEdit(),
    submitLabel: 'Save',
    success: 'Agent updates saved.',
    children: [
      field(
        'Agent updates',
        control,
        'A device checks the release’s signature and checksums first; a failed update leaves it on its version and shows in Activity.',
      ),
    ],
    action: () => put('/settings', { auto_update: control.value === 'on' }),
  });
}
