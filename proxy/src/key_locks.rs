//! One prompt of a turn at a time through the gate: copies of a prompt sent
//! side by side wait for the first to be decided, then find it reserved
//! (and are charged to its allowance) instead of each passing the gate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Debug, Default)]
pub struct KeyLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyLocks {
    /// Waits until no other request holds `key`, and holds it.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().expect("key locks");
            // Forget the locks nobody holds or waits for.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(key.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_key_waits_and_others_do_not() {
        let locks = Arc::new(KeyLocks::default());
        let held = locks.lock("s:1").await;
        let other =
            tokio::time::timeout(std::time::Duration::from_secs(5), locks.lock("s:2")).await;
        assert!(other.is_ok(), "another key is not held up");
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock("s:1").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        let _second = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the waiting copy gets the key once it is free")
            .unwrap();
    }
}
