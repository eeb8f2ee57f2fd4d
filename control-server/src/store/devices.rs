//! Devices: registration with an install code, details, sightings, tokens.

use jiff::Timestamp;
use serde_json::json;

use super::{Store, StoreResult};
use crate::db::devices::{CodeProblem, DeviceRow, NewDevice};
use crate::db::{self};
use crate::model::{DeviceDetails, DeviceKind};
use crate::service::audit;

/// A device to create once its install code is redeemed.
#[derive(Debug, Clone)]
pub struct DeviceToRegister {
    pub kind: DeviceKind,
    /// The hex hash of its token.
    pub token_hash: String,
    pub details: DeviceDetails,
}

impl Store {
    /// Redeems the install code with hash `code_hash` and creates the
    /// device in one transaction, so a code works exactly once, even when
    /// two machines race with it. Audited when it works.
    pub async fn register_device(
        &self,
        code_hash: String,
        device: DeviceToRegister,
        now: Timestamp,
    ) -> StoreResult<Result<DeviceRow, CodeProblem>> {
        self.db
            .write(move |tx| {
                let new = NewDevice {
                    kind: device.kind,
                    token_hash: &device.token_hash,
                    details: &device.details,
                };
                let redeemed =
                    db::devices::redeem_install_code(tx, &code_hash, now.as_millisecond(), &new)?;
                if let Ok(row) = &redeemed {
                    let entry = audit(
                        now,
                        "device_registered",
                        &format!("device:{}", row.id),
                        Some(row.user_id),
                        Some(row.id),
                        Some(json!({ "kind": device.kind, "hostname": row.details.hostname })),
                    );
                    db::audit::insert(tx, &entry)?;
                }
                Ok(redeemed)
            })
            .await
    }

    /// Stores what device `id` says about itself (host, versions).
    pub async fn set_device_details(&self, id: i64, details: DeviceDetails) -> StoreResult<()> {
        self.db
            .write(move |tx| db::devices::update_details(tx, id, &details))
            .await
    }

    /// When each device was last seen: `(device id, ms)` pairs.
    pub async fn record_sightings(&self, seen: Vec<(i64, i64)>) -> StoreResult<()> {
        self.db
            .write(move |tx| db::devices::record_last_seen(tx, &seen))
            .await
    }
}
