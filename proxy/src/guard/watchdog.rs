//! The watchdog task: watches ccgate's files (file-change events plus a
//! scan every minute), restores what changed from the backups, reports each
//! change to the server as a tamper event, and blocks prompts while
//! something cannot be restored (fail closed).
//!
//! Without a manifest (a daemon not installed by `ccgate setup`, such as a
//! test or development run) it stays idle.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ccgate_quota::wire::{AgentEvent, EventBody, TamperEvent};
use notify::Watcher;
use tokio::sync::{mpsc, watch};

use crate::guard::integrity::{self, Damage, HashCache, Item};
use crate::guard::manifest::{MANIFEST_LOCK, Manifest};
use crate::paths::Paths;
use crate::state::Shared;

/// The periodic full scan (file events can be missed, e.g. on a remount).
pub const SCAN_PERIOD: Duration = Duration::from_secs(60);
/// Events arriving within this window are handled together.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A difference must still be there after this pause before it is treated
/// as tampering: ccgate's own writes (a rotated token) update the manifest
/// right after the file, and editors save in several steps.
const SETTLE: Duration = Duration::from_millis(150);

pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let paths = shared.paths.clone();
    let manifest = match Manifest::load(&paths) {
        Ok(Some(manifest)) => manifest,
        Ok(None) => {
            tracing::info!(
                "no integrity manifest at {}: not installed by ccgate setup, the watchdog stays idle",
                paths.manifest().display()
            );
            return;
        }
        Err(error) => {
            tracing::error!("{error}");
            shared.set_integrity_problem(Some(error.to_string()));
            return;
        }
    };
    let (events_tx, mut events) = mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
                let _ = events_tx.send(path);
            }
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!("file-change events unavailable, scanning every minute only: {error}");
            None
        }
    };
    let mut watchdog = Watchdog {
        shared,
        paths,
        manifest,
        unresolved: BTreeMap::new(),
        watched: HashSet::new(),
        cache: Some(HashCache::default()),
    };
    tracing::info!("watchdog guarding {} files", watchdog.manifest.files.len());
    tokio::select! {
        _ = crate::stopped(&mut stop) => return,
        _ = watchdog.scan(None) => {}
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SCAN_PERIOD, SCAN_PERIOD);
    loop {
        if let Some(watcher) = watcher.as_mut() {
            watchdog.watch_dirs(watcher);
        }
        // What to check: `None` is everything.
        let due: Option<BTreeSet<Item>> = tokio::select! {
            _ = crate::stopped(&mut stop) => return,
            _ = tick.tick() => None,
            Some(path) = events.recv() => {
                let mut touched = BTreeSet::new();
                let mut full = watchdog.classify(&path, &mut touched);
                tokio::select! {
                    _ = crate::stopped(&mut stop) => return,
                    _ = tokio::time::sleep(DEBOUNCE) => {}
                }
                while let Ok(path) = events.try_recv() {
                    full |= watchdog.classify(&path, &mut touched);
                }
                if full {
                    None
                } else if touched.is_empty() {
                    continue;
                } else {
                    Some(touched)
                }
            }
        };
        // A scan hashes files: do not hold up a shutdown for it.
        tokio::select! {
            _ = crate::stopped(&mut stop) => return,
            _ = watchdog.scan(due) => {}
        }
    }
}

struct Watchdog {
    shared: Arc<Shared>,
    paths: Paths,
    /// The last manifest read (rewritten from memory if the file goes).
    manifest: Manifest,
    /// Damage that could not be repaired, with why.
    unresolved: BTreeMap<Item, String>,
    watched: HashSet<PathBuf>,
    /// Moved into each blocking pass and back.
    cache: Option<HashCache>,
}

impl Watchdog {
    /// The directories holding what is guarded.
    fn dirs(&self) -> BTreeSet<PathBuf> {
        let mut dirs: BTreeSet<PathBuf> = Item::all(&self.manifest)
            .into_iter()
            .filter_map(|item| item.path(&self.paths).parent().map(Path::to_owned))
            .collect();
        dirs.insert(self.paths.backup_dir());
        dirs
    }

    /// (Re)watches every directory that exists; a directory that was removed
    /// and created again needs a new watch.
    fn watch_dirs(&mut self, watcher: &mut notify::RecommendedWatcher) {
        for dir in self.dirs() {
            let exists = dir.is_dir();
            if exists && !self.watched.contains(&dir) {
                if watcher
                    .watch(&dir, notify::RecursiveMode::NonRecursive)
                    .is_ok()
                {
                    self.watched.insert(dir);
                }
            } else if !exists && self.watched.remove(&dir) {
                let _ = watcher.unwatch(&dir);
            }
        }
    }

    /// Adds the item an event path belongs to; true when a full scan is due
    /// (a watched directory itself changed, or the manifest did).
    fn classify(&self, path: &Path, touched: &mut BTreeSet<Item>) -> bool {
        if path == self.paths.manifest() || self.watched.contains(path) {
            return true;
        }
        for item in Item::all(&self.manifest) {
            if item.path(&self.paths) == path {
                touched.insert(item);
            }
        }
        false
    }

    /// Checks `only` (or everything), repairs what differs, reports it.
    async fn scan(&mut self, mut only: Option<BTreeSet<Item>>) {
        // What could not be repaired is looked at again every time, so the
        // block lifts as soon as things are whole.
        if let Some(only) = only.as_mut() {
            only.extend(self.unresolved.keys().copied());
        }
        let first = self.check(only.clone(), false).await;
        if first.damage.is_empty() && !first.manifest_lost {
            self.settle(first.checked, Vec::new());
            return;
        }
        tokio::time::sleep(SETTLE).await;
        let second = self.check(only, true).await;
        self.settle(second.checked, second.repaired);
    }

    /// One pass under the manifest lock; with `repair`, damage is repaired.
    async fn check(&mut self, only: Option<BTreeSet<Item>>, repair: bool) -> Pass {
        let paths = self.paths.clone();
        let cached = self.manifest.clone();
        let mut cache = self.cache.take().unwrap_or_default();
        let pass = tokio::task::spawn_blocking(move || {
            let _lock = MANIFEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let (manifest, manifest_lost) = match Manifest::load(&paths) {
                Ok(Some(manifest)) => (manifest, false),
                Ok(None) | Err(_) => (cached, true),
            };
            let mut repaired = Vec::new();
            if manifest_lost && repair {
                let damage = Damage {
                    item: Item::Manifest,
                    what: "modified",
                    detail: "the integrity manifest was deleted or damaged".to_owned(),
                };
                let result = integrity::repair(&paths, &manifest, &damage);
                repaired.push((damage, result));
            }
            let items = match only {
                Some(only) => only.into_iter().collect(),
                None => Item::all(&manifest),
            };
            let damage = integrity::inspect(&paths, &manifest, &items, &mut cache);
            if repair {
                for damage in &damage {
                    let result = integrity::repair(&paths, &manifest, damage);
                    repaired.push((damage.clone(), result));
                }
            }
            let mut checked = items;
            checked.push(Item::Manifest);
            Pass {
                manifest,
                manifest_lost,
                checked,
                damage,
                repaired,
                cache: Some(cache),
            }
        })
        .await;
        match pass {
            Ok(mut pass) => {
                self.manifest = pass.manifest.clone();
                self.cache = pass.cache.take();
                pass
            }
            Err(error) => {
                tracing::error!("integrity check failed to run: {error}");
                Pass {
                    manifest: self.manifest.clone(),
                    manifest_lost: false,
                    checked: Vec::new(),
                    damage: Vec::new(),
                    repaired: Vec::new(),
                    cache: None,
                }
            }
        }
    }

    /// Reports the repairs and updates the problem that blocks prompts.
    fn settle(&mut self, checked: Vec<Item>, repaired: Vec<(Damage, Result<(), String>)>) {
        for item in checked {
            self.unresolved.remove(&item);
        }
        let mut events = Vec::new();
        for (damage, result) in repaired {
            let path = damage.item.path(&self.paths);
            let system_path = self.paths.to_system(&path).display().to_string();
            match &result {
                Ok(()) => tracing::warn!(
                    path = system_path,
                    what = damage.what,
                    "restored the {}: {}",
                    damage.item.label(),
                    damage.detail
                ),
                Err(why) => {
                    tracing::error!(
                        path = system_path,
                        what = damage.what,
                        "cannot restore the {}: {why}",
                        damage.item.label()
                    );
                    self.unresolved.insert(damage.item, why.clone());
                }
            }
            events.push(AgentEvent {
                id: uuid::Uuid::now_v7(),
                at: self.shared.now(),
                body: EventBody::Tamper(TamperEvent {
                    path: system_path,
                    what: damage.what.to_owned(),
                    restored: result.is_ok(),
                    detail: Some(match result {
                        Ok(()) => damage.detail,
                        Err(why) => format!("{}; not restored: {why}", damage.detail),
                    }),
                }),
            });
        }
        self.shared
            .set_integrity_problem(integrity::describe_unresolved(
                &self.paths,
                &self.unresolved,
            ));
        if !events.is_empty() {
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                for event in events {
                    shared.store_event(event);
                }
            });
        }
    }
}

struct Pass {
    manifest: Manifest,
    manifest_lost: bool,
    checked: Vec<Item>,
    damage: Vec<Damage>,
    repaired: Vec<(Damage, Result<(), String>)>,
    cache: Option<HashCache>,
}
