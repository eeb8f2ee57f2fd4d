//! On SQLite: Devices: registration with an install code, details, sightings, tokens.

use jiff::Timestamp;
use serde_json::json;

use crate::db::Db;
use crate::db::devices::{CodeProblem, NewDevice};
use crate::db::{self};
use crate::model::{Device, DeviceDetails};
use crate::service::audit;
use crate::store::DeviceToRegister;
use crate::store::StoreResult;

impl Db {
    pub async fn register_device(
        &self,
        code_hash: String,
        device: DeviceToRegister,
        now: Timestamp,
    ) -> StoreResult<Result<Device, CodeProblem>> {
        self.write(move |tx| {
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

    pub async fn set_device_details(&self, id: i64, details: DeviceDetails) -> StoreResult<()> {
        self.write(move |tx| db::devices::update_details(tx, id, &details))
            .await
    }

    pub async fn record_sightings(&self, seen: Vec<(i64, i64)>) -> StoreResult<()> {
        self.write(move |tx| db::devices::record_last_seen(tx, &seen))
            .await
    }
}
