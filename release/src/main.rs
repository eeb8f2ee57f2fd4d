//! `ccgate-release`: makes the release key and signed agent bundles.
//!
//! ```text
//! ccgate-release keygen --out DIR
//! ccgate-release bundle --version 0.2.0 --key DIR/ccgate-release.key --out dist/agent \
//!     [--binaries-dir target/release] [--platform linux-x86_64]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ccgate_quota::release::{PROGRAMS, this_platform};
use ccgate_release::{Binary, generate_keypair, make_bundle, public_key_of};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ccgate-release",
    about = "Makes ccgate's signed agent release bundles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new release key pair: ccgate-release.key (secret, 0600) and
    /// ccgate-release.pub.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key (base64) of a secret key file, for
    /// CCGATE_RELEASE_PUBKEY.
    PublicKey {
        #[arg(long)]
        key: PathBuf,
    },
    /// Make a signed bundle of `ccgate` and `ccgate-proxy`.
    Bundle {
        #[arg(long)]
        version: String,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "target/release")]
        binaries_dir: PathBuf,
        /// The platform the binaries are for (default: this machine's).
        #[arg(long)]
        platform: Option<String>,
        /// Binaries of several platforms in one bundle, as PLATFORM=DIR
        /// (e.g. linux-aarch64=artifacts/linux-aarch64); replaces
        /// --binaries-dir and --platform.
        #[arg(long = "from", value_name = "PLATFORM=DIR")]
        from: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ccgate-release: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen { out } => {
            let secret_path = out.join("ccgate-release.key");
            if secret_path.exists() {
                bail!(
                    "{} exists; not replacing a release key",
                    secret_path.display()
                );
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let (public, secret) = generate_keypair()?;
            write_secret(&secret_path, &secret)?;
            let public_path = out.join("ccgate-release.pub");
            std::fs::write(&public_path, &public)
                .with_context(|| format!("writing {}", public_path.display()))?;
            println!("{}", public_key_of(&secret)?);
        }
        Command::PublicKey { key } => {
            let secret = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            println!("{}", public_key_of(&secret)?);
        }
        Command::Bundle {
            version,
            key,
            out,
            binaries_dir,
            platform,
            from,
        } => {
            let secret = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let sources: Vec<(String, PathBuf)> = if from.is_empty() {
                vec![(platform.unwrap_or_else(this_platform), binaries_dir)]
            } else {
                from.iter()
                    .map(|pair| {
                        pair.split_once('=')
                            .map(|(p, dir)| (p.to_owned(), PathBuf::from(dir)))
                            .with_context(|| format!("--from {pair:?} is not PLATFORM=DIR"))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let binaries: Vec<Binary> = sources
                .iter()
                .flat_map(|(platform, dir)| {
                    PROGRAMS.iter().map(move |program| Binary {
                        program: (*program).to_owned(),
                        platform: platform.clone(),
                        path: dir.join(program),
                    })
                })
                .collect();
            make_bundle(&out, &version, &binaries, &secret)?;
            let platforms: Vec<&str> = sources.iter().map(|(p, _)| p.as_str()).collect();
            println!(
                "signed bundle {version} for {} in {}",
                platforms.join(", "),
                out.display()
            );
        }
    }
    Ok(())
}

fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
