//! Agent releases: what a release bundle holds, what the server advertises
//! of it, and what lets a daemon install it.
//!
//! A bundle is `SHA256SUMS` (sha256sum's format), `SHA256SUMS.minisig` (a
//! minisign signature over it whose trusted comment names the version),
//! `VERSION`, and `<program>-<os>-<arch>` for each program and platform.
//! The server is trusted to say *that* there is a release; only the
//! signature says *what* it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const SUMS_FILE: &str = "SHA256SUMS";
pub const SIGNATURE_FILE: &str = "SHA256SUMS.minisig";
pub const VERSION_FILE: &str = "VERSION";
/// The programs a developer machine runs.
pub const PROGRAMS: [&str; 2] = ["ccgate", "ccgate-proxy"];
/// The daemon, whose build identifies what a device runs.
pub const DAEMON: &str = "ccgate-proxy";

/// What the server serves, sent with every sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRelease {
    pub version: String,
    /// File name → SHA-256 (hex), as in `SHA256SUMS`.
    pub files: BTreeMap<String, String>,
    /// Whether the bundle is signed (a `SHA256SUMS.minisig`).
    #[serde(default)]
    pub signed: bool,
}

impl AgentRelease {
    /// The SHA-256 of `program` for `platform`, if the release has it.
    pub fn sha256_of(&self, program: &str, platform: &str) -> Option<&str> {
        self.files
            .get(&file_name(program, platform))
            .map(String::as_str)
    }
}

/// `ccgate-proxy-linux-x86_64`.
pub fn file_name(program: &str, platform: &str) -> String {
    format!("{program}-{platform}")
}

/// This build's platform as bundles name it (`linux-x86_64`, `macos-aarch64`).
pub fn this_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The trusted comment of a release signature: signed with the sums, so
/// the version cannot be changed without the release key.
pub fn trusted_comment(version: &str) -> String {
    format!("ccgate-release version={version}")
}

/// The version a release signature's trusted comment names.
pub fn version_in_trusted_comment(comment: &str) -> Option<&str> {
    comment
        .strip_prefix("ccgate-release version=")
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Parses sha256sum's output; `Err(line number)` on a line that is not
/// `<64 hex>  <plain file name>`.
pub fn parse_sums(text: &str) -> Result<BTreeMap<String, String>, usize> {
    let mut files = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (sum, file) = line.split_once(char::is_whitespace).ok_or(index + 1)?;
        let file = file.trim_start().trim_start_matches('*');
        let valid_sum = sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit());
        let valid_name = !file.is_empty()
            && !file.starts_with('.')
            && file
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid_sum || !valid_name {
            return Err(index + 1);
        }
        files.insert(file.to_owned(), sum.to_ascii_lowercase());
    }
    Ok(files)
}

/// Whether dotted version `a` is newer than `b` (numeric parts compared in
/// order; a part that does not read as a number counts as 0).
pub fn is_newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['.', '-', '+'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    let len = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..len)
        .map(|i| at(&a, i).cmp(&at(&b, i)))
        .find(|o| o.is_ne())
        .is_some_and(|o| o.is_gt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_take_only_plain_names_and_real_digests() {
        let sum = "a".repeat(64);
        let files = parse_sums(&format!(
            "{sum}  ccgate-linux-x86_64\n{sum} *ccgate-proxy-linux-x86_64\n"
        ))
        .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files["ccgate-proxy-linux-x86_64"], sum);
        for bad in [
            format!("{sum}  ../etc/passwd"),
            format!("{sum}  .hidden"),
            format!("{sum}  dir/file"),
            "abc  ccgate".to_owned(),
            "no-space-here".to_owned(),
        ] {
            assert!(parse_sums(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert!(is_newer("0.2.0", "0.1.9"));
        assert!(is_newer("0.10.0", "0.9.0"));
        assert!(is_newer("1.0.1", "1.0"));
        assert!(!is_newer("0.1.0", "0.1.0"));
        assert!(!is_newer("0.0.9", "0.1.0"));
        assert_eq!(
            version_in_trusted_comment(&trusted_comment("0.2.0")),
            Some("0.2.0")
        );
        assert_eq!(version_in_trusted_comment("timestamp:1\tfile:x"), None);
    }
}
