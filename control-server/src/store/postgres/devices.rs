//! On PostgreSQL: Devices: registration with an install code, details, sightings, tokens.

use jiff::Timestamp;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};

use crate::db::devices::CodeProblem;
use crate::db::{corrupt, non_empty};
use crate::model::{CodeKind, Device, DeviceDetails};
use crate::postgres::PgDb;
use crate::service::audit;
use crate::store::StoreResult;
use crate::store::{DeviceToRegister, PendingToken};

/// A device's columns, in the order [`device_row`] reads them.
macro_rules! columns {
    () => {
        "id, user_id, kind, token_hash, pending_token_hash, hostname, os, arch, os_user, \
         os_version, claude_version, agent_version, created_at, last_seen_at, agent_build, \
         pending_token_sealed"
    };
}

const LIVE_DEVICES: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM devices WHERE revoked_at IS NULL ORDER BY id"
);

const LIVE_DEVICE_FOR_UPDATE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM devices WHERE id = $1 AND revoked_at IS NULL FOR UPDATE"
);

const INSERT_DEVICE: &str = concat!(
    "INSERT INTO devices (user_id, kind, token_hash, hostname, os, arch, os_user, os_version,
         claude_version, agent_version, created_at, last_seen_at, agent_build)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)
     RETURNING ",
    columns!()
);

const REVOKE: &str = "UPDATE devices SET revoked_at = $2, token_hash = 'revoked:' || id,
         pending_token_hash = NULL, pending_token_sealed = NULL
     WHERE id = $1";

const SET_PENDING_TOKEN: &str =
    "UPDATE devices SET pending_token_hash = $2, pending_token_sealed = $3 WHERE id = $1";

/// Fields a client did not send keep their value.
const UPDATE_DETAILS: &str = "UPDATE devices SET
         hostname = COALESCE($2, hostname), os = COALESCE($3, os), arch = COALESCE($4, arch),
         os_user = COALESCE($5, os_user), os_version = COALESCE($6, os_version),
         claude_version = COALESCE($7, claude_version),
         agent_version = COALESCE($8, agent_version), agent_build = COALESCE($9, agent_build)
     WHERE id = $1";

const RECORD_LAST_SEEN: &str =
    "UPDATE devices SET last_seen_at = GREATEST(COALESCE(last_seen_at, 0), $2) WHERE id = $1";

/// The code, locked: a second registration with it waits for the first and
/// then sees it used.
const INSTALL_CODE_FOR_UPDATE: &str = "SELECT id, user_id, expires_at, used_at, kind
     FROM install_codes WHERE code_hash = $1 FOR UPDATE";

const MARK_CODE_USED: &str = "UPDATE install_codes SET used_at = $2, device_id = $3 WHERE id = $1";

/// A row of [`columns!`].
pub(super) fn device_row(row: &Row) -> StoreResult<Device> {
    let kind: String = row.try_get(2)?;
    Ok(Device {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        kind: kind.parse().map_err(corrupt)?,
        token_hash: row.try_get(3)?,
        pending_token_hash: row.try_get(4)?,
        pending_token_sealed: row.try_get(15)?,
        details: DeviceDetails {
            hostname: row.try_get(5)?,
            os: row.try_get(6)?,
            arch: row.try_get(7)?,
            os_user: row.try_get(8)?,
            os_version: row.try_get(9)?,
            claude_version: row.try_get(10)?,
            agent_version: row.try_get(11)?,
            agent_build: row.try_get(14)?,
        },
        created_at: super::instant(row, 12)?,
        last_seen_at: super::instant_opt(row, 13)?,
    })
}

/// Every device that was not revoked.
pub(super) async fn list_live(client: &impl GenericClient) -> StoreResult<Vec<Device>> {
    client
        .query(LIVE_DEVICES, &[])
        .await?
        .iter()
        .map(device_row)
        .collect()
}

/// Revokes a device: its tokens are forgotten (no token hashes to
/// `revoked:<id>`), its row and events stay. The row as it was, if it was
/// a device that was not revoked yet.
pub(super) async fn revoke(
    client: &impl GenericClient,
    id: i64,
    now: i64,
) -> StoreResult<Option<Device>> {
    let Some(row) = client.query_opt(LIVE_DEVICE_FOR_UPDATE, &[&id]).await? else {
        return Ok(None);
    };
    let row = device_row(&row)?;
    client.execute(REVOKE, &[&id, &now]).await?;
    Ok(Some(row))
}

pub(super) async fn set_pending_token(
    client: &impl GenericClient,
    token: &PendingToken,
) -> StoreResult<()> {
    client
        .execute(
            SET_PENDING_TOKEN,
            &[&token.device_id, &token.hash, &token.sealed],
        )
        .await?;
    Ok(())
}

/// Redeems an install code and creates its device in the caller's
/// transaction: the code is marked used in the same transaction, so it
/// works exactly once.
async fn redeem_install_code(
    client: &impl GenericClient,
    code_hash: &str,
    now: i64,
    device: &DeviceToRegister,
) -> StoreResult<Result<Device, CodeProblem>> {
    let Some(code) = client
        .query_opt(INSTALL_CODE_FOR_UPDATE, &[&code_hash])
        .await?
    else {
        return Ok(Err(CodeProblem::Unknown));
    };
    let code_id: i64 = code.try_get(0)?;
    let user_id: i64 = code.try_get(1)?;
    let expires_at: i64 = code.try_get(2)?;
    let used_at: Option<i64> = code.try_get(3)?;
    let kind: &str = code.try_get(4)?;
    if kind != CodeKind::for_device(device.kind).as_str() {
        return Ok(Err(CodeProblem::WrongKind));
    }
    if used_at.is_some() {
        return Ok(Err(CodeProblem::Used));
    }
    if expires_at <= now {
        return Ok(Err(CodeProblem::Expired));
    }
    let details = &device.details;
    let row = client
        .query_one(
            INSERT_DEVICE,
            &[
                &user_id,
                &device.kind.as_str(),
                &device.token_hash,
                &non_empty(&details.hostname),
                &non_empty(&details.os),
                &non_empty(&details.arch),
                &non_empty(&details.os_user),
                &non_empty(&details.os_version),
                &non_empty(&details.claude_version),
                &non_empty(&details.agent_version),
                &now,
                &non_empty(&details.agent_build),
            ],
        )
        .await?;
    let row = device_row(&row)?;
    client
        .execute(MARK_CODE_USED, &[&code_id, &now, &row.id])
        .await?;
    Ok(Ok(row))
}

impl PgDb {
    pub async fn register_device(
        &self,
        code_hash: String,
        device: DeviceToRegister,
        now: Timestamp,
    ) -> StoreResult<Result<Device, CodeProblem>> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let redeemed = redeem_install_code(&*tx, &code_hash, now.as_millisecond(), &device).await?;
        if let Ok(row) = &redeemed {
            let entry = audit(
                now,
                "device_registered",
                &format!("device:{}", row.id),
                Some(row.user_id),
                Some(row.id),
                Some(json!({ "kind": device.kind, "hostname": row.details.hostname })),
            );
            super::insert_audit(&*tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(redeemed)
    }

    pub async fn set_device_details(&self, id: i64, details: DeviceDetails) -> StoreResult<()> {
        let client = self.connection().await?;
        client
            .execute(
                UPDATE_DETAILS,
                &[
                    &id,
                    &non_empty(&details.hostname),
                    &non_empty(&details.os),
                    &non_empty(&details.arch),
                    &non_empty(&details.os_user),
                    &non_empty(&details.os_version),
                    &non_empty(&details.claude_version),
                    &non_empty(&details.agent_version),
                    &non_empty(&details.agent_build),
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn record_sightings(&self, mut seen: Vec<(i64, i64)>) -> StoreResult<()> {
        // In device order: two replicas recording the same devices lock
        // their rows in the same order, so they cannot deadlock.
        seen.sort_unstable();
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let statement = tx.prepare(RECORD_LAST_SEEN).await?;
        for (id, at) in &seen {
            tx.execute(&statement, &[id, at]).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
