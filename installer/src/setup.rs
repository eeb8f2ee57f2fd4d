//! `sudo ccgate setup`: checks everything it can before changing anything,
//! registers the device, installs every file through the undo journal,
//! starts the service, then runs doctor. A failure after the first change
//! rolls everything back.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ccgate_machine::ca;
use ccgate_machine::config::{DEFAULT_PORT, ProxyConfig, plain_http_off_loopback};
use ccgate_machine::manifest::{
    FileRecord, MANIFEST_VERSION, Manifest, Protected, ServiceKind, SettingsRecord,
};
use ccgate_machine::paths::Paths;
use ccgate_machine::settings;
use ccgate_quota::wire::DeviceInfo;

use crate::account::{self, OsUser};
use crate::doctor::{self, DoctorReport};
use crate::error::{InstallError, Result};
use crate::journal::Journal;
use crate::server::{ServerClient, TokenCheck};
use crate::{ca_check, local, service};

/// How long a started daemon has to answer on its port.
const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub root: PathBuf,
    /// The install code; without one, an existing working registration is
    /// kept (a repair).
    pub code: Option<String>,
    pub server: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub no_service: bool,
    /// The daemon to install; default: `ccgate-proxy` next to this program.
    pub proxy_binary: Option<PathBuf>,
    /// Accept a plain `http://` server on another machine.
    pub insecure: bool,
    /// The network's HTTP proxy (`http://HOST:PORT`) for Anthropic and the
    /// server; `None` keeps an earlier install's.
    pub upstream_proxy: Option<String>,
    /// A CA (PEM) a TLS-inspecting proxy signs with; `None` keeps an
    /// earlier install's.
    pub extra_ca: Option<PathBuf>,
}

#[derive(Debug)]
pub struct SetupOutcome {
    pub device_id: i64,
    pub service: ServiceKind,
    pub listen: SocketAddr,
    pub doctor: DoctorReport,
}

/// Why setup failed, what became of the changes, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("setup failed: {cause}\n{aftermath}\n{advice}")]
pub struct SetupFailed {
    pub cause: InstallError,
    pub aftermath: String,
    pub advice: String,
}

/// Everything setup found out before changing anything.
struct Plan {
    paths: Paths,
    server: ServerClient,
    listen: SocketAddr,
    user: OsUser,
    binary: PathBuf,
    service: ServiceKind,
    /// The server is plain http off this machine, and that was accepted.
    insecure: bool,
    /// The network's proxy and extra CA the daemon is to use.
    upstream_proxy: Option<String>,
    extra_ca: Option<ExtraCa>,
    /// Managed settings as they are now.
    settings_now: Option<(Vec<u8>, u32)>,
    previous: Option<Previous>,
}

/// The CA a TLS-inspecting proxy signs with.
enum ExtraCa {
    /// Given to this setup: copied into ccgate's directory.
    New(PathBuf),
    /// Installed before, kept.
    Kept(PathBuf),
}

impl ExtraCa {
    fn path(&self) -> &Path {
        match self {
            Self::New(path) | Self::Kept(path) => path,
        }
    }
}

/// An earlier install on this machine.
struct Previous {
    config: Option<ProxyConfig>,
    token: Option<String>,
    manifest: Option<Manifest>,
}

struct Registration {
    device_id: i64,
    token: String,
    /// An earlier registration kept (no install code was used).
    kept: bool,
    /// The server holds the team's subscription credential for this person
    /// (known when a code was used: the registration carries the policy).
    team_credential: bool,
}

pub async fn setup(
    options: &SetupOptions,
    out: &mut dyn Write,
) -> std::result::Result<SetupOutcome, SetupFailed> {
    let nothing_changed = |cause: InstallError| {
        let advice = advice(&cause, options);
        SetupFailed {
            cause,
            aftermath: "Nothing was changed on this machine.".to_owned(),
            advice,
        }
    };
    let plan = prepare(options).map_err(nothing_changed)?;
    let registration = register(&plan, options).await.map_err(nothing_changed)?;
    let _ = writeln!(
        out,
        "{} device {} at {}",
        if registration.kept {
            "Keeping the registration of"
        } else {
            "Registered as"
        },
        registration.device_id,
        plan.server.url()
    );
    let mut journal = Journal::new();
    if let Err(cause) = install(&plan, &registration, &mut journal, out).await {
        let problems = journal.rollback();
        let mut aftermath = if problems.is_empty() {
            "Every change setup made was undone: nothing is left half-installed.".to_owned()
        } else {
            format!(
                "Setup undid its changes, except: {}. Remove those by hand or run sudo ccgate uninstall.",
                problems.join("; ")
            )
        };
        if !registration.kept {
            aftermath.push_str(&format!(
                " The install code is used up (it registered device {}): ask your ccgate admin to delete that device and give you a new code.",
                registration.device_id
            ));
        }
        let advice = advice(&cause, options);
        return Err(SetupFailed {
            cause,
            aftermath,
            advice,
        });
    }
    journal.commit();
    let doctor = doctor::run(&plan.paths, Some(plan.listen.port())).await;
    let _ = writeln!(out, "\n{}", doctor.render());
    let _ = writeln!(out, "{}", what_the_person_sees(&plan, &registration));
    Ok(SetupOutcome {
        device_id: registration.device_id,
        service: plan.service,
        listen: plan.listen,
        doctor,
    })
}

/// What to do about a failure.
fn advice(cause: &InstallError, options: &SetupOptions) -> String {
    let server = &options.server;
    match cause {
        InstallError::NotRoot { .. } => "Run the same command with sudo.".to_owned(),
        InstallError::Unreachable { url, .. } => format!(
            "Check that {url} is the ccgate server (open {url}/healthz) and that this machine can reach it, then run the same command again."
        ),
        InstallError::Refused { code, .. } => match code.as_deref() {
            Some(
                "install_code_used"
                | "install_code_expired"
                | "install_code_unknown"
                | "install_code_wrong_kind",
            ) => format!(
                "Ask your ccgate admin for a new install code, then run: sudo ccgate setup --code NEW_CODE --server {server}"
            ),
            _ => "Ask your ccgate admin; the server's message above says why.".to_owned(),
        },
        InstallError::Io { path, .. } => format!(
            "Make {} writable for root (is that file system mounted read-only, or the directory immutable?), then run the same command again.",
            path.display()
        ),
        InstallError::Service(_) | InstallError::DaemonDown { .. } => format!(
            "See the daemon's log (journalctl -u ccgate-proxy, or {}), fix the cause, then run the same command again.",
            service::log_file(&Paths::for_current_os(&options.root)).display()
        ),
        InstallError::Invalid(_) => "Fix the above, then run the same command again.".to_owned(),
    }
}

fn prepare(options: &SetupOptions) -> Result<Plan> {
    if !ccgate_machine::os::is_root() {
        return Err(InstallError::NotRoot { command: "setup" });
    }
    let paths = Paths::for_current_os(&options.root);
    if plain_http_off_loopback(&options.server) && !options.insecure {
        return Err(InstallError::Invalid(format!(
            "--server {} is plain http to another machine: this device's token and every count would cross the network unprotected. Use the server's https:// address; to accept the risk on a network you trust, add --insecure",
            options.server.trim()
        )));
    }
    let previous_config = ProxyConfig::load(&paths.config_file()).ok();
    let kept = previous_config.as_ref();
    let upstream_proxy = options
        .upstream_proxy
        .clone()
        .or_else(|| kept.and_then(|c| c.upstream_proxy.clone()));
    ccgate_proxy::egress::Egress::new(upstream_proxy.as_deref())
        .map_err(|e| InstallError::Invalid(format!("--upstream-proxy: {e}")))?;
    let extra_ca = match &options.extra_ca {
        Some(path) => Some(ExtraCa::New(path.clone())),
        None => kept.and_then(|c| c.extra_ca.clone()).map(ExtraCa::Kept),
    };
    let server = ServerClient::through(
        &options.server,
        upstream_proxy.as_deref(),
        extra_ca.as_ref().map(ExtraCa::path),
    )?;
    let port = options
        .port
        .or(previous_config.as_ref().map(|c| c.listen.port()))
        .unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(InstallError::Invalid("--port must not be 0".to_owned()));
    }
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let user = account::resolve(&paths, options.user.as_deref())?;
    let binary = match &options.proxy_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()
            .map_err(|e| InstallError::Invalid(format!("cannot tell where ccgate is: {e}")))?
            .with_file_name("ccgate-proxy"),
    };
    if !binary.is_file() {
        return Err(InstallError::Invalid(format!(
            "cannot find the daemon binary {}: pass --proxy-binary PATH",
            binary.display()
        )));
    }
    let settings_path = paths.managed_settings();
    let settings_now = match std::fs::read(&settings_path) {
        Ok(bytes) => {
            let mode = ccgate_machine::fsutil::mode_of(&settings_path)
                .map_err(InstallError::io("read", &settings_path))?;
            Some((bytes, mode))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(InstallError::io("read", &settings_path)(e)),
    };
    if let Some((bytes, _)) = &settings_now {
        settings::merge(Some(bytes), &settings::ccgate_env(listen, &paths.ca_cert())).map_err(
            |e| {
                InstallError::Invalid(format!(
                    "the managed settings {} cannot be merged: {e}. Fix the file (or move it away)",
                    settings_path.display()
                ))
            },
        )?;
    }
    let service = service::choose(&paths, options.no_service);
    let mut dirs = vec![
        paths.state_dir(),
        parent(&paths.daemon_binary()),
        parent(&settings_path),
    ];
    if service::render(service, &paths, None).is_some() {
        dirs.push(parent(&paths.service_file()));
    }
    if matches!(service, ServiceKind::Detached | ServiceKind::Launchd) {
        dirs.push(paths.log_dir());
        dirs.push(parent(&paths.pid_file()));
    }
    for dir in &dirs {
        probe_writable(dir)?;
    }
    let previous = Previous {
        config: previous_config,
        token: ccgate_machine::token::read_token(&paths).ok(),
        manifest: Manifest::load(&paths).ok().flatten(),
    };
    let previous = (previous.config.is_some() || previous.manifest.is_some()).then_some(previous);
    Ok(Plan {
        paths,
        server,
        listen,
        user,
        binary,
        service,
        insecure: options.insecure && plain_http_off_loopback(&options.server),
        upstream_proxy,
        extra_ca,
        settings_now,
        previous,
    })
}

fn parent(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new("/")).to_owned()
}

/// Creates and removes a file in `dir`, or in its nearest existing
/// ancestor, so a read-only place is found before anything changes.
fn probe_writable(dir: &Path) -> Result<()> {
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    let probe = existing.join(format!(".ccgate-setup-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(InstallError::io("write to", existing))?;
    std::fs::remove_file(&probe).map_err(InstallError::io("write to", existing))
}

async fn register(plan: &Plan, options: &SetupOptions) -> Result<Registration> {
    let kept = || async {
        let previous = plan.previous.as_ref()?;
        let (config, token) = (previous.config.as_ref()?, previous.token.as_ref()?);
        if config.server_url() != plan.server.url() {
            return None;
        }
        match plan.server.check_token(token).await {
            Ok(TokenCheck::Accepted { .. }) => Some(Registration {
                device_id: config.device_id,
                token: token.clone(),
                kept: true,
                team_credential: false,
            }),
            _ => None,
        }
    };
    let Some(code) = &options.code else {
        return kept().await.ok_or_else(|| {
            InstallError::Invalid(format!(
                "--code is required: this machine has no working registration with {}",
                plan.server.url()
            ))
        });
    };
    let device = DeviceInfo {
        hostname: ccgate_machine::os::hostname(),
        os: plan.paths.platform().as_str().to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        os_version: None,
        os_user: Some(plan.user.name.clone()),
        claude_version: None,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        agent_build: None,
    };
    match plan.server.register(code, device).await {
        Ok(registered) => Ok(Registration {
            device_id: registered.device_id,
            token: registered.device_token,
            kept: false,
            team_credential: matches!(
                registered.sync.policy.credential,
                ccgate_quota::CredentialMode::TeamCredential { .. }
            ),
        }),
        // Running the same command twice: the code is spent, but this
        // machine's registration from the first run still works.
        Err(error @ InstallError::Refused { .. }) => kept().await.ok_or(error),
        Err(error) => Err(error),
    }
}

async fn install(
    plan: &Plan,
    registration: &Registration,
    journal: &mut Journal,
    out: &mut dyn Write,
) -> Result<()> {
    let paths = &plan.paths;
    let previous_manifest = plan.previous.as_ref().and_then(|p| p.manifest.as_ref());
    if let Some(previous) = previous_manifest
        && previous.service != ServiceKind::None
    {
        // Its watchdog would undo the new files.
        let (kind, paths_again) = (previous.service, paths.clone());
        service::stop(kind, paths)?;
        journal.on_rollback("restart the previous daemon", move || {
            service::start(kind, &paths_again)
        });
    }

    let mut created: Vec<PathBuf> = previous_manifest
        .map(|m| m.created_dirs.clone())
        .unwrap_or_default();
    let mut make_dir = |journal: &mut Journal, dir: PathBuf, mode: u32| -> Result<()> {
        for dir in journal.create_dir(&dir, mode)? {
            let system = paths.to_system(&dir);
            if !created.contains(&system) {
                created.push(system);
            }
        }
        Ok(())
    };
    make_dir(journal, paths.state_dir(), 0o700)?;
    make_dir(journal, paths.backup_dir(), 0o700)?;
    make_dir(journal, parent(&paths.daemon_binary()), 0o755)?;
    make_dir(journal, parent(&paths.managed_settings()), 0o755)?;
    let unit = service::render(plan.service, paths, Some(&plan.user.home));
    if unit.is_some() {
        make_dir(journal, parent(&paths.service_file()), 0o755)?;
    }
    if matches!(plan.service, ServiceKind::Detached | ServiceKind::Launchd) {
        make_dir(journal, paths.log_dir(), 0o755)?;
        make_dir(journal, parent(&paths.pid_file()), 0o755)?;
    }

    install_ca(paths, journal)?;
    let mut config = ProxyConfig::new(plan.server.url(), registration.device_id);
    if let Some(previous) = plan.previous.as_ref().and_then(|p| p.config.as_ref()) {
        config.keep_tuning_of(previous);
    }
    config.listen = plan.listen;
    config.allow_insecure_server = plan.insecure;
    config.upstream_proxy = plan.upstream_proxy.clone();
    config.extra_ca = match &plan.extra_ca {
        Some(ExtraCa::New(source)) => {
            let installed = paths.extra_ca();
            journal.copy(source, &installed, 0o644)?;
            Some(installed)
        }
        Some(ExtraCa::Kept(path)) => Some(path.clone()),
        None => None,
    };
    config.os_user = Some(plan.user.name.clone());
    config.os_user_home = Some(plan.user.home.clone());
    journal.write(&paths.config_file(), config.to_toml().as_bytes(), 0o600)?;
    journal.write(&paths.device_token(), registration.token.as_bytes(), 0o600)?;
    let same_file = plan.binary.canonicalize().ok() == paths.daemon_binary().canonicalize().ok();
    if !same_file {
        journal.copy(&plan.binary, &paths.daemon_binary(), 0o755)?;
    }
    match &unit {
        Some(unit) => journal.write(&paths.service_file(), unit.as_bytes(), 0o644)?,
        None if previous_manifest.is_some_and(|m| m.record(Protected::ServiceFile).is_some()) => {
            journal.remove(&paths.service_file())?;
        }
        None => {}
    }

    let settings_record = install_settings(plan, journal)?;
    let mut manifest = Manifest {
        version: MANIFEST_VERSION,
        written_at: jiff::Timestamp::now(),
        service: plan.service,
        files: Vec::new(),
        settings: settings_record,
        created_dirs: created,
    };
    for file in Protected::ALL {
        if file == Protected::ServiceFile && unit.is_none() {
            continue;
        }
        journal.copy(&file.path(paths), &file.backup_path(paths), 0o600)?;
        manifest.set_record(
            FileRecord::of(paths, file).map_err(InstallError::io("read", &file.path(paths)))?,
        );
    }
    let mut bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    bytes.push(b'\n');
    journal.write(&paths.manifest(), &bytes, 0o600)?;
    let _ = writeln!(
        out,
        "Installed ccgate's files under {} (daemon {}, managed settings {})",
        paths.root().display(),
        paths.daemon_binary().display(),
        paths.managed_settings().display()
    );

    let (kind, paths_again) = (plan.service, paths.clone());
    journal.on_rollback("stop the daemon setup started", move || {
        service::stop(kind, &paths_again)
    });
    service::start(plan.service, paths)?;
    if plan.service != ServiceKind::None {
        wait_until_answering(paths, plan.listen).await?;
        let _ = writeln!(out, "The daemon answers on {}", plan.listen);
    }
    Ok(())
}

/// Keeps a CA that is still good (Claude Code already trusts it), else
/// makes a new one.
fn install_ca(paths: &Paths, journal: &mut Journal) -> Result<()> {
    let cert = std::fs::read(paths.ca_cert()).ok();
    let key = std::fs::read_to_string(paths.ca_key()).ok();
    if let (Some(cert), Some(key)) = (&cert, &key)
        && ca_check::check(cert, Some(key)).is_ok()
    {
        return Ok(());
    }
    journal.track(&paths.ca_cert())?;
    journal.track(&paths.ca_key())?;
    ca::create(&paths.ca_cert(), &paths.ca_key())
        .map_err(|e| InstallError::Invalid(format!("cannot create the CA: {e}")))
}

/// Merges ccgate's keys into the managed settings, keeping a copy of the
/// file as it was before the first setup.
fn install_settings(plan: &Plan, journal: &mut Journal) -> Result<SettingsRecord> {
    let paths = &plan.paths;
    let env = settings::ccgate_env(plan.listen, &paths.ca_cert());
    let previous = plan
        .previous
        .as_ref()
        .and_then(|p| p.manifest.as_ref())
        .map(|m| m.settings.clone());
    let (had_original, original_mode) = match previous {
        // A re-run: the original is the one from before the first setup.
        Some(previous) => (previous.had_original, previous.original_mode),
        None => {
            if let Some((bytes, _)) = &plan.settings_now {
                journal.write(&Manifest::original_settings_path(paths), bytes, 0o600)?;
            }
            (
                plan.settings_now.is_some(),
                plan.settings_now.as_ref().map(|(_, mode)| *mode),
            )
        }
    };
    let current = plan
        .settings_now
        .as_ref()
        .map(|(bytes, _)| bytes.as_slice());
    let merged = settings::merge(current, &env)
        .map_err(|e| InstallError::Invalid(format!("cannot merge the managed settings: {e}")))?;
    journal.write(&paths.managed_settings(), &merged, 0o644)?;
    journal.write(&Manifest::installed_settings_path(paths), &merged, 0o600)?;
    Ok(SettingsRecord {
        env,
        had_original,
        original_mode,
    })
}

async fn wait_until_answering(paths: &Paths, listen: SocketAddr) -> Result<()> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        match local::fetch_status(listen).await {
            Ok(_) => return Ok(()),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(InstallError::Service(format!(
                    "the daemon was started but does not answer: {error}{}",
                    service::log_tail(paths)
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn what_the_person_sees(plan: &Plan, registration: &Registration) -> String {
    let user = &plan.user.name;
    let mut text = format!(
        "ccgate is set up for {user} (device {device}, server {server}).\n\
         What {user} will see:\n\
         - Claude Code works as before once restarted; its traffic to api.anthropic.com goes through ccgate on {listen}.\n\
         - ccgate status shows their usage against each limit, and when each resets.\n\
         - A prompt over a limit stops with \"API Error: 400 ccgate blocked this prompt: …\" and their usage.\n\
         - If an admin revokes access, prompts stop at once and they are logged out of Claude Code.\n",
        device = registration.device_id,
        server = plan.server.url(),
        listen = plan.listen,
    );
    if registration.team_credential {
        text.push_str(&format!(
            "- Team credential mode: Claude Code signs in with the team's subscription, which only ccgate holds;              {user}'s own stored Claude login is moved out of their home (kept root-only, given back by uninstall).\n"
        ));
    }
    match plan.service {
        ServiceKind::Detached => text.push_str(&format!(
            "Note: no service manager (systemd or launchd) runs here, so setup started the daemon itself. \
             It will NOT survive a reboot: after one, run {}\n",
            service::restart_command(ServiceKind::Detached, &plan.paths)
        )),
        ServiceKind::None => text.push_str(&format!(
            "Note: --no-service: no service was installed and no daemon started. Start it with: {}\n",
            service::restart_command(ServiceKind::None, &plan.paths)
        )),
        ServiceKind::Systemd | ServiceKind::Launchd => {}
    }
    text
}
