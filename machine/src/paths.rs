//! Every file ccgate touches on a developer machine, under one root prefix
//! (`/` in production, a temp dir in tests), so nothing else in the code
//! builds a system path by hand.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    MacOs,
}

impl Platform {
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Self::MacOs
        } else {
            Self::Linux
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::MacOs => "macos",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
    platform: Platform,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>, platform: Platform) -> Self {
        Self {
            root: root.into(),
            platform,
        }
    }

    /// The layout of the platform this binary was built for.
    pub fn for_current_os(root: impl Into<PathBuf>) -> Self {
        Self::new(root, Platform::current())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// Maps an absolute system path (`/home/alice`) under the root prefix.
    pub fn under_root(&self, system_path: impl AsRef<Path>) -> PathBuf {
        let relative = system_path
            .as_ref()
            .strip_prefix("/")
            .unwrap_or(system_path.as_ref());
        self.root.join(relative)
    }

    /// `/etc/ccgate` or `/Library/Application Support/ccgate`: config, CA,
    /// token, ledger and backups. Root-owned, 0700.
    pub fn state_dir(&self) -> PathBuf {
        match self.platform {
            Platform::Linux => self.under_root("/etc/ccgate"),
            Platform::MacOs => self.under_root("/Library/Application Support/ccgate"),
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.state_dir().join("config.toml")
    }

    /// The CA certificate Claude Code trusts via `NODE_EXTRA_CA_CERTS` (0644).
    pub fn ca_cert(&self) -> PathBuf {
        self.state_dir().join("ca.pem")
    }

    /// The CA's private key (0600, never leaves the machine).
    pub fn ca_key(&self) -> PathBuf {
        self.state_dir().join("ca.key")
    }

    pub fn device_token(&self) -> PathBuf {
        self.state_dir().join("device.token")
    }

    /// The durable event ledger and cached policy.
    pub fn state_db(&self) -> PathBuf {
        self.state_dir().join("state.db")
    }

    /// Root-only copies of the protected files and their manifest.
    pub fn backup_dir(&self) -> PathBuf {
        self.state_dir().join(".backup")
    }

    pub fn manifest(&self) -> PathBuf {
        self.backup_dir().join("manifest.json")
    }

    pub fn daemon_binary(&self) -> PathBuf {
        self.under_root("/usr/local/lib/ccgate/ccgate-proxy")
    }

    /// The `ccgate` command, where the install script puts it.
    pub fn cli_binary(&self) -> PathBuf {
        self.under_root("/usr/local/bin/ccgate")
    }

    /// The CA of the network's TLS-inspecting proxy, if setup was given one.
    pub fn extra_ca(&self) -> PathBuf {
        self.state_dir().join("extra-ca.pem")
    }

    /// Release keys an admin trusts besides the one built in (one minisign
    /// public key per line; root-owned, not writable by others).
    pub fn release_keys(&self) -> PathBuf {
        self.state_dir().join("release-keys.pub")
    }

    pub fn service_file(&self) -> PathBuf {
        match self.platform {
            Platform::Linux => self.under_root("/etc/systemd/system/ccgate-proxy.service"),
            Platform::MacOs => self.under_root("/Library/LaunchDaemons/dev.ccgate.proxy.plist"),
        }
    }

    /// Claude Code's managed settings, which users cannot override.
    pub fn managed_settings(&self) -> PathBuf {
        match self.platform {
            Platform::Linux => self.under_root("/etc/claude-code/managed-settings.json"),
            Platform::MacOs => {
                self.under_root("/Library/Application Support/ClaudeCode/managed-settings.json")
            }
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        match self.platform {
            Platform::Linux => self.under_root("/var/log/ccgate"),
            Platform::MacOs => self.under_root("/Library/Logs/ccgate"),
        }
    }

    /// Written when the daemon detaches itself (no service manager).
    pub fn pid_file(&self) -> PathBuf {
        self.under_root("/var/run/ccgate-proxy.pid")
    }

    /// Whether this layout is the real system (root `/`), as opposed to a
    /// staging or test prefix. Service managers are only used for the real one.
    pub fn is_system_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The system path of a path under the root prefix (`/tmp/r/etc/x` →
    /// `/etc/x`), for messages, manifests and admins.
    pub fn to_system(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.root) {
            Ok(relative) => Path::new("/").join(relative),
            Err(_) => path.to_owned(),
        }
    }

    /// The account database the installer reads a user's home from.
    pub fn passwd_file(&self) -> PathBuf {
        self.under_root("/etc/passwd")
    }

    /// Where Claude Code keeps a user's login on Linux, under the root prefix.
    pub fn claude_credentials(&self, home: &Path) -> PathBuf {
        self.under_root(home).join(".claude/.credentials.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_layout_lives_under_the_root_prefix() {
        let paths = Paths::new("/tmp/r", Platform::Linux);
        assert_eq!(
            paths.config_file(),
            Path::new("/tmp/r/etc/ccgate/config.toml")
        );
        assert_eq!(
            paths.managed_settings(),
            Path::new("/tmp/r/etc/claude-code/managed-settings.json")
        );
        assert_eq!(
            paths.claude_credentials(Path::new("/home/alice")),
            Path::new("/tmp/r/home/alice/.claude/.credentials.json")
        );
        assert_eq!(
            Paths::new("/", Platform::Linux).daemon_binary(),
            Path::new("/usr/local/lib/ccgate/ccgate-proxy")
        );
        assert_eq!(
            paths.to_system(&paths.ca_cert()),
            Path::new("/etc/ccgate/ca.pem")
        );
        assert!(!paths.is_system_root());
        assert!(Paths::new("/", Platform::Linux).is_system_root());
    }

    #[test]
    fn macos_layout() {
        let paths = Paths::new("/", Platform::MacOs);
        assert_eq!(
            paths.service_file(),
            Path::new("/Library/LaunchDaemons/dev.ccgate.proxy.plist")
        );
        assert_eq!(
            paths.managed_settings(),
            Path::new("/Library/Application Support/ClaudeCode/managed-settings.json")
        );
        assert_eq!(
            paths.ca_key(),
            Path::new("/Library/Application Support/ccgate/ca.key")
        );
    }
}
