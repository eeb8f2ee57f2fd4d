//! Whose Claude Code is gated: the OS account named with `--user` (or the
//! one that ran sudo), and its home directory.

use std::path::PathBuf;

use ccgate_machine::paths::{Paths, Platform};

use crate::error::{InstallError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    pub name: String,
    /// A system path (`/home/alice`), not under the root prefix.
    pub home: PathBuf,
}

/// The user named explicitly, else `SUDO_USER`.
pub fn resolve(paths: &Paths, explicit: Option<&str>) -> Result<OsUser> {
    let name = explicit
        .map(str::to_owned)
        .or_else(|| std::env::var("SUDO_USER").ok().filter(|u| u != "root"))
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            InstallError::Invalid(
                "tell setup whose Claude Code to gate: --user NAME (the person's login name)"
                    .to_owned(),
            )
        })?;
    if name.contains(['/', ':', '\0']) || name.starts_with('.') {
        return Err(InstallError::Invalid(format!(
            "{name:?} is not a user name"
        )));
    }
    let home = home_of(paths, &name);
    Ok(OsUser { name, home })
}

/// The home from the system's user database (real root), else from
/// `<root>/etc/passwd`, else the platform's usual place.
fn home_of(paths: &Paths, name: &str) -> PathBuf {
    if paths.is_system_root()
        && let Some(account) = ccgate_machine::os::lookup_user(name)
    {
        return account.home;
    }
    let from_passwd = std::fs::read_to_string(paths.passwd_file())
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() >= 7 && fields[0] == name && fields[5].starts_with('/'))
                    .then(|| PathBuf::from(fields[5]))
            })
        });
    from_passwd.unwrap_or_else(|| match paths.platform() {
        Platform::Linux => PathBuf::from("/home").join(name),
        Platform::MacOs => PathBuf::from("/Users").join(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_comes_from_the_prefixed_passwd_or_the_platform_default() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), Platform::Linux);
        assert_eq!(
            resolve(&paths, Some("alice")).unwrap().home,
            PathBuf::from("/home/alice")
        );
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            paths.passwd_file(),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/srv/alice:/bin/bash\n",
        )
        .unwrap();
        assert_eq!(
            resolve(&paths, Some("alice")).unwrap().home,
            PathBuf::from("/srv/alice")
        );
        let mac = Paths::new(root.path(), Platform::MacOs);
        assert_eq!(
            resolve(&mac, Some("bob")).unwrap().home,
            PathBuf::from("/Users/bob")
        );
        assert!(resolve(&paths, Some("../x")).is_err());
    }
}
