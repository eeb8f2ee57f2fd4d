//! Devices in memory: token hash → device, so authenticating a device costs
//! a hash and a map lookup. `last_seen_at` is kept here and written to the
//! database in batches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jiff::Timestamp;

use crate::model::{DeviceDetails, DeviceKind};
use crate::secrets::TokenHash;

#[derive(Debug)]
struct Tokens {
    current: TokenHash,
    /// A replacement issued by a kill or rotation: its hash, and its text
    /// while it still has to be delivered.
    pending: Option<(TokenHash, String)>,
}

#[derive(Debug)]
pub struct DeviceLive {
    pub id: i64,
    pub user_id: i64,
    pub kind: DeviceKind,
    pub created_at: Timestamp,
    tokens: Mutex<Tokens>,
    details: Mutex<DeviceDetails>,
    last_seen_ms: AtomicI64,
    flushed_seen_ms: AtomicI64,
    open_streams: AtomicU32,
}

/// Which of a device's tokens a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    Current,
    /// The replacement, used for the first time: the old one must go.
    Pending,
}

impl DeviceLive {
    pub fn new(
        id: i64,
        user_id: i64,
        kind: DeviceKind,
        created_at: Timestamp,
        token: TokenHash,
        details: DeviceDetails,
        last_seen_at: Option<Timestamp>,
    ) -> Self {
        let seen = last_seen_at.map_or(0, Timestamp::as_millisecond);
        Self {
            id,
            user_id,
            kind,
            created_at,
            tokens: Mutex::new(Tokens {
                current: token,
                pending: None,
            }),
            details: Mutex::new(details),
            last_seen_ms: AtomicI64::new(seen),
            flushed_seen_ms: AtomicI64::new(seen),
            open_streams: AtomicU32::new(0),
        }
    }

    /// The hash of the token the device uses now.
    pub fn token(&self) -> TokenHash {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
    }

    pub fn details(&self) -> DeviceDetails {
        self.details
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn hostname(&self) -> Option<String> {
        self.details
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hostname
            .clone()
    }

    /// Merges what the device sent (fields it left out keep their value).
    pub fn update_details(&self, update: &DeviceDetails) {
        let mut details = self.details.lock().unwrap_or_else(|p| p.into_inner());
        let merge = |old: &mut Option<String>, new: &Option<String>| {
            if let Some(value) = new.as_deref().filter(|v| !v.is_empty()) {
                *old = Some(value.to_owned());
            }
        };
        merge(&mut details.hostname, &update.hostname);
        merge(&mut details.os, &update.os);
        merge(&mut details.arch, &update.arch);
        merge(&mut details.os_user, &update.os_user);
        merge(&mut details.os_version, &update.os_version);
        merge(&mut details.claude_version, &update.claude_version);
        merge(&mut details.agent_version, &update.agent_version);
        merge(&mut details.agent_build, &update.agent_build);
    }

    /// The replacement token still to be delivered, if any.
    pub fn pending_token(&self) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.pending.as_ref().map(|(_, text)| text.clone())
    }

    /// The hash of the replacement token still to be delivered, if any.
    pub fn pending_hash(&self) -> Option<TokenHash> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.pending.as_ref().map(|(hash, _)| *hash)
    }

    pub fn seen(&self, now_ms: i64) {
        self.last_seen_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn last_seen_ms(&self) -> Option<i64> {
        Some(self.last_seen_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }

    /// `Some(ms)` when there is a newer sighting than the last written one;
    /// marks it written.
    fn take_unflushed(&self) -> Option<i64> {
        let seen = self.last_seen_ms.load(Ordering::Relaxed);
        let flushed = self.flushed_seen_ms.swap(seen, Ordering::Relaxed);
        (seen > flushed).then_some(seen)
    }

    pub fn stream_opened(&self) {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_closed(&self) {
        self.open_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connected now (a live stream), or seen within `window_ms`.
    pub fn online(&self, now_ms: i64, window_ms: i64) -> bool {
        self.open_streams.load(Ordering::Relaxed) > 0
            || self
                .last_seen_ms()
                .is_some_and(|seen| now_ms - seen <= window_ms)
    }
}

#[derive(Debug, Default)]
pub struct DeviceRegistry {
    by_token: RwLock<HashMap<TokenHash, Arc<DeviceLive>>>,
    by_id: RwLock<HashMap<i64, Arc<DeviceLive>>>,
}

impl DeviceRegistry {
    pub fn insert(&self, device: Arc<DeviceLive>) {
        let token = device
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current;
        self.by_token
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, Arc::clone(&device));
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device.id, device);
    }

    pub fn get(&self, id: i64) -> Option<Arc<DeviceLive>> {
        self.by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn of_user(&self, user_id: i64) -> Vec<Arc<DeviceLive>> {
        let mut devices: Vec<_> = self
            .by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|d| d.user_id == user_id)
            .cloned()
            .collect();
        devices.sort_by_key(|d| d.id);
        devices
    }

    pub fn authenticate(&self, hash: &TokenHash) -> Option<(Arc<DeviceLive>, TokenUse)> {
        let device = self
            .by_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()?;
        let tokens = device.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let used = if tokens.current == *hash {
            TokenUse::Current
        } else {
            TokenUse::Pending
        };
        drop(tokens);
        Some((device, used))
    }

    /// Issues `new` as the device's replacement token (dropping an earlier
    /// undelivered one); both it and the current token work until it is used.
    pub fn set_pending(&self, device: &Arc<DeviceLive>, new_hash: TokenHash, new_text: String) {
        let mut tokens = device.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_token = self.by_token.write().unwrap_or_else(|p| p.into_inner());
        if let Some((old_pending, _)) = tokens.pending.take() {
            by_token.remove(&old_pending);
        }
        by_token.insert(new_hash, Arc::clone(device));
        tokens.pending = Some((new_hash, new_text));
    }

    /// The replacement was used: it becomes the only token.
    pub fn promote_pending(&self, device: &Arc<DeviceLive>, used: &TokenHash) -> bool {
        let mut tokens = device.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.pending.as_ref().map(|(hash, _)| hash) != Some(used) {
            return false;
        }
        let old = tokens.current;
        tokens.current = *used;
        tokens.pending = None;
        self.by_token
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&old);
        true
    }

    /// Forgets one device and every token it had (a revocation).
    pub fn remove(&self, id: i64) -> Option<Arc<DeviceLive>> {
        let device = self
            .by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)?;
        self.by_token
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, known| known.id != id);
        Some(device)
    }

    pub fn remove_user(&self, user_id: i64) {
        let removed: Vec<Arc<DeviceLive>> = {
            let mut by_id = self.by_id.write().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<i64> = by_id
                .values()
                .filter(|d| d.user_id == user_id)
                .map(|d| d.id)
                .collect();
            ids.iter().filter_map(|id| by_id.remove(id)).collect()
        };
        let mut by_token = self.by_token.write().unwrap_or_else(|p| p.into_inner());
        by_token.retain(|_, device| device.user_id != user_id);
        drop(removed);
    }

    /// Sightings not yet written, as `(device id, ms)`.
    pub fn unflushed_sightings(&self) -> Vec<(i64, i64)> {
        self.by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|d| d.take_unflushed().map(|ms| (d.id, ms)))
            .collect()
    }
}
