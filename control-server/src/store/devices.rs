//! Devices: registration with an install code, details, sightings, tokens.

use jiff::Timestamp;

use super::{Store, StoreResult};
use crate::db::devices::CodeProblem;
use crate::model::{Device, DeviceDetails, DeviceKind};

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
    ) -> StoreResult<Result<Device, CodeProblem>> {
        dispatch!(self, register_device(code_hash, device, now))
    }

    /// Stores what device `id` says about itself (host, versions).
    pub async fn set_device_details(&self, id: i64, details: DeviceDetails) -> StoreResult<()> {
        dispatch!(self, set_device_details(id, details))
    }

    /// When each device was last seen: `(device id, ms)` pairs.
    pub async fn record_sightings(&self, seen: Vec<(i64, i64)>) -> StoreResult<()> {
        dispatch!(self, record_sightings(seen))
    }
}
