//! Reading a request body whole, within a limit, without leaving the client
//! writing into a closed connection.

use bytes::Bytes;
use http_body_util::BodyExt;
use hudsucker::Body;

pub enum BodyRead {
    TooLarge,
    Broken(String),
}

/// Past this, an oversized body is no longer read to the end: the
/// connection is closed instead.
const DRAIN_LIMIT: usize = 512 << 20;

/// Reads a request body of at most `limit` bytes. A larger one is read to
/// its end and dropped (up to [`DRAIN_LIMIT`]) so that the client, still
/// sending, receives the refusal instead of a broken pipe.
pub async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<usize>,
) -> Result<Bytes, BodyRead> {
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    let mut too_large = declared.is_some_and(|length| length > limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRead::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        too_large |= seen > limit;
        if too_large {
            if seen > DRAIN_LIMIT {
                break;
            }
            kept.clear();
        } else {
            kept.extend_from_slice(&data);
        }
    }
    if too_large {
        Err(BodyRead::TooLarge)
    } else {
        Ok(kept.freeze())
    }
}
