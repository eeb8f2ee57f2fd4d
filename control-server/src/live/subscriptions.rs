//! What policies need to know of the subscriptions: each one's name, kind
//! and credential version. The credential itself is never held here; the
//! credential endpoint opens it from the database when a device asks.

use std::collections::HashMap;

use ccgate_quota::{CredentialKind, CredentialMode};

use crate::model::{Subscription, SubscriptionOrigin};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEntry {
    pub name: String,
    pub kind: CredentialKind,
    pub credential_version: u64,
}

impl From<&Subscription> for SubscriptionEntry {
    fn from(row: &Subscription) -> Self {
        Self {
            name: row.name.clone(),
            kind: row.kind,
            credential_version: row.credential_version,
        }
    }
}

/// Every subscription by id.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionDirectory {
    entries: HashMap<i64, SubscriptionEntry>,
}

impl SubscriptionDirectory {
    /// Only enrolled subscriptions: a seen account has no credential to
    /// hand out, so nobody can be assigned to one.
    pub fn from_rows(rows: &[Subscription]) -> Self {
        Self {
            entries: rows
                .iter()
                .filter(|row| row.origin == SubscriptionOrigin::Enrolled)
                .map(|row| (row.id, SubscriptionEntry::from(row)))
                .collect(),
        }
    }

    pub fn get(&self, id: i64) -> Option<&SubscriptionEntry> {
        self.entries.get(&id)
    }

    /// The directory with `row` added or replaced.
    pub fn with(&self, row: &Subscription) -> Self {
        let mut next = self.clone();
        if row.origin == SubscriptionOrigin::Enrolled {
            next.entries.insert(row.id, SubscriptionEntry::from(row));
        }
        next
    }

    /// The directory without subscription `id`.
    pub fn without(&self, id: i64) -> Self {
        let mut next = self.clone();
        next.entries.remove(&id);
        next
    }

    /// How a user assigned to `subscription_id` signs in: with the team's
    /// credential when the subscription exists, else with their own login.
    pub fn credential_mode(&self, subscription_id: Option<i64>) -> CredentialMode {
        match subscription_id.and_then(|id| Some((id, self.entries.get(&id)?))) {
            Some((id, entry)) => CredentialMode::TeamCredential {
                subscription_id: id,
                kind: entry.kind,
                version: entry.credential_version,
            },
            None => CredentialMode::PersonalLogin,
        }
    }
}
