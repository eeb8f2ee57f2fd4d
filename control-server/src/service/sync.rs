//! The policy and usage a device decides from.

use ccgate_quota::release::AgentRelease;
use ccgate_quota::wire::SyncResponse;
use jiff::Timestamp;

use crate::live::devices::DeviceLive;
use crate::live::users::UserLive;

pub fn sync_response(
    device: &DeviceLive,
    user: &UserLive,
    release: Option<&AgentRelease>,
    now: Timestamp,
) -> SyncResponse {
    let state = user.lock();
    SyncResponse {
        server_time: now,
        policy: state.policy.policy.clone(),
        usage: state.snapshot(now),
        new_device_token: device.pending_token(),
        agent_release: release.cloned(),
    }
}
