//! Agent binaries as a developer machine downloads them: the workspace's
//! own builds of `ccgate` and `ccgate-proxy`, laid out as a release bundle
//! (`SHA256SUMS`, `VERSION`, `<program>-<os>-<arch>`).

use std::path::{Path, PathBuf};

use ccgate_server::agent_bundle::{PROGRAMS, sha256_file, this_platform};

/// A program this workspace built (`target/debug/<name>`, beside the
/// directory of the test binary). `scripts/test.sh` builds them.
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = debug.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run cargo build -p ccgate -p ccgate-proxy first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A signed bundle (as `ccgate-release bundle` makes it) of this
/// workspace's builds, each changed by `patch` first: appending bytes makes
/// a different build that still runs.
pub fn write_signed_bundle(
    dir: &Path,
    version: &str,
    secret_key: &str,
    patch: impl Fn(&str, &mut Vec<u8>),
) {
    let sources = tempfile::tempdir().expect("temp dir");
    let binaries: Vec<ccgate_release::Binary> = PROGRAMS
        .iter()
        .map(|program| {
            let mut bytes = std::fs::read(built_binary(program)).expect("built binary");
            patch(program, &mut bytes);
            let path = sources.path().join(program);
            std::fs::write(&path, &bytes).expect("patched binary");
            ccgate_release::Binary {
                program: (*program).to_owned(),
                platform: this_platform(),
                path,
            }
        })
        .collect();
    ccgate_release::make_bundle(dir, version, &binaries, secret_key).expect("signed bundle");
}

/// Writes a release bundle of this workspace's builds into `dir`;
/// `patch` may change a program's bytes (a different version, a tampered
/// file) before the checksums are taken.
pub fn write_bundle(dir: &Path, version: &str, patch: impl Fn(&str, &mut Vec<u8>)) {
    std::fs::create_dir_all(dir).expect("bundle dir");
    let mut sums = String::new();
    for program in PROGRAMS {
        let mut bytes = std::fs::read(built_binary(program)).expect("built binary");
        patch(program, &mut bytes);
        let name = format!("{program}-{}", this_platform());
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).expect("bundle file");
        sums.push_str(&format!("{}  {name}\n", sha256_file(&path).expect("sum")));
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).expect("SHA256SUMS");
    std::fs::write(dir.join("VERSION"), format!("{version}\n")).expect("VERSION");
}
