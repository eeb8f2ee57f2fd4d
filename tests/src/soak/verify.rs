//! The reckoning: every event a device recorded (a simulated device's
//! ledger, a real proxy's `state.db`) against the server's `ccgate.db`,
//! read with SQLite once both are stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// Where an event stands in its device's ledger at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The server answered for it; the device forgot it.
    Acked,
    /// Still waiting to be delivered.
    Pending,
    /// The server refused it; set aside (quarantined) with this reason.
    Refused(String),
}

#[derive(Debug, Clone)]
pub struct DeviceEvent {
    pub id: String,
    pub kind: String,
    pub prompt: bool,
    pub held: Held,
}

#[derive(Debug, Clone)]
pub struct DeviceLedger {
    pub name: String,
    pub device_id: i64,
    pub events: Vec<DeviceEvent>,
}

#[derive(Debug, Clone)]
pub struct ServerEvent {
    pub id: String,
    pub device_id: Option<i64>,
    pub kind: String,
    pub prompts: i64,
    pub turn_key: Option<String>,
    pub count_reason: Option<String>,
}

/// The events of a proxy's ledger.
pub fn read_proxy_ledger(path: &Path) -> anyhow::Result<Vec<DeviceEvent>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("open {}", path.display()))?;
    let columns: HashSet<String> = conn
        .prepare("PRAGMA table_info(events)")?
        .query_map([], |row| row.get::<_, String>(1))?
        .collect::<Result<_, _>>()?;
    let quarantine = columns.contains("quarantined_at_ms");
    let sql = if quarantine {
        "SELECT id, prompts, acked_at_ms, body, quarantined_at_ms, quarantine_reason FROM events"
    } else {
        "SELECT id, prompts, acked_at_ms, body, NULL, NULL FROM events"
    };
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map([], |row| {
        let body: String = row.get(3)?;
        let body: Value = serde_json::from_str(&body).unwrap_or_default();
        let acked: Option<i64> = row.get(2)?;
        let quarantined: Option<i64> = row.get(4)?;
        let reason: Option<String> = row.get(5)?;
        let held = match (quarantined, acked) {
            (Some(_), _) => Held::Refused(reason.unwrap_or_default()),
            (None, Some(_)) => Held::Acked,
            (None, None) => Held::Pending,
        };
        Ok(DeviceEvent {
            id: row.get(0)?,
            kind: body["type"].as_str().unwrap_or("?").to_owned(),
            prompt: row.get::<_, i64>(1)? > 0,
            held,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every event the server stored.
pub fn read_server(path: &Path) -> anyhow::Result<Vec<ServerEvent>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("open {}", path.display()))?;
    let mut statement =
        conn.prepare("SELECT id, device_id, type, prompts, turn_key, count_reason FROM events")?;
    let rows = statement.query_map([], |row| {
        Ok(ServerEvent {
            id: row.get(0)?,
            device_id: row.get(1)?,
            kind: row.get(2)?,
            prompts: row.get(3)?,
            turn_key: row.get(4)?,
            count_reason: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A turn key without its generation (`base~N` → `base`).
pub fn turn_base(key: &str) -> &str {
    match key.rsplit_once('~') {
        Some((base, generation)) if generation.parse::<u32>().is_ok() => base,
        _ => key,
    }
}

#[derive(Debug, Default)]
pub struct Reckoning {
    pub recorded: usize,
    pub at_server: usize,
    /// (device, id, type) acknowledged by the server but not in its database.
    pub lost_after_ack: Vec<(String, String, String)>,
    /// (device, id, type) still waiting in a device's ledger.
    pub undelivered: Vec<(String, String, String)>,
    /// (device, id, reason) refused by the server and set aside.
    pub refused: Vec<(String, String, String)>,
    /// (device, id, server's device id) stored under another device.
    pub misplaced: Vec<(String, String, Option<i64>)>,
    /// (id, device id, type) at the server but recorded by no device.
    pub unknown: Vec<(String, Option<i64>, String)>,
    /// (device id, turn, why each count counted) counted more than once.
    pub doubled_turns: Vec<(i64, String, Vec<String>)>,
    /// Ids stored more than once (the primary key forbids it).
    pub doubled_ids: Vec<String>,
    pub prompts_recorded: u64,
    pub prompts_at_server: u64,
    /// (device, recorded, at the server) where the counts differ.
    pub prompt_mismatch: Vec<(String, u64, u64)>,
}

impl Reckoning {
    pub fn lost(&self) -> usize {
        self.lost_after_ack.len() + self.undelivered.len() + self.refused.len()
    }

    pub fn doubled(&self) -> usize {
        self.doubled_ids.len()
            + self
                .doubled_turns
                .iter()
                .map(|(_, _, reasons)| reasons.len() - 1)
                .sum::<usize>()
    }
}

pub fn reckon(devices: &[DeviceLedger], server: &[ServerEvent]) -> Reckoning {
    let mut r = Reckoning {
        at_server: server.len(),
        ..Reckoning::default()
    };
    let mut by_id: HashMap<&str, &ServerEvent> = HashMap::new();
    for event in server {
        if by_id.insert(event.id.as_str(), event).is_some() {
            r.doubled_ids.push(event.id.clone());
        }
    }
    let mut known: HashSet<&str> = HashSet::new();
    for device in devices {
        let mut prompts_recorded = 0u64;
        for event in &device.events {
            r.recorded += 1;
            known.insert(event.id.as_str());
            prompts_recorded += u64::from(event.prompt);
            let triple = || (device.name.clone(), event.id.clone(), event.kind.clone());
            match by_id.get(event.id.as_str()) {
                Some(stored) if stored.device_id != Some(device.device_id) => {
                    r.misplaced
                        .push((device.name.clone(), event.id.clone(), stored.device_id));
                }
                Some(_) => {}
                None => match &event.held {
                    Held::Acked => r.lost_after_ack.push(triple()),
                    Held::Pending => r.undelivered.push(triple()),
                    Held::Refused(reason) => {
                        r.refused
                            .push((device.name.clone(), event.id.clone(), reason.clone()))
                    }
                },
            }
        }
        let prompts_at_server: u64 = server
            .iter()
            .filter(|e| e.device_id == Some(device.device_id))
            .map(|e| e.prompts.max(0) as u64)
            .sum();
        r.prompts_recorded += prompts_recorded;
        r.prompts_at_server += prompts_at_server;
        if prompts_recorded != prompts_at_server {
            r.prompt_mismatch
                .push((device.name.clone(), prompts_recorded, prompts_at_server));
        }
    }
    let ours: HashSet<i64> = devices.iter().map(|d| d.device_id).collect();
    let mut counted: BTreeMap<(i64, String), Vec<String>> = BTreeMap::new();
    for event in server {
        if !known.contains(event.id.as_str()) {
            r.unknown
                .push((event.id.clone(), event.device_id, event.kind.clone()));
        }
        if event.prompts > 0
            && let (Some(device), Some(key)) = (event.device_id, &event.turn_key)
            && ours.contains(&device)
        {
            counted
                .entry((device, turn_base(key).to_owned()))
                .or_default()
                .push(event.count_reason.clone().unwrap_or_else(|| "?".to_owned()));
        }
    }
    r.doubled_turns = counted
        .into_iter()
        .filter(|(_, reasons)| reasons.len() > 1)
        .map(|((device, key), reasons)| (device, key, reasons))
        .collect();
    r
}
