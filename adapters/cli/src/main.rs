//! `proxy-delegate`: the command line of proxy-delegate.
//!
//! Subcommands:
//!
//! * `resolve --exchange <ID> --type <http|websocket> [--region <R>] [--config
//!   <config.yaml>] [--embedded-only] [--repeat <N>] [--json]`: which proxy
//!   this exchange connection gets.
//! * `check-config <config.yaml>`: the effective settings (redacted) and where
//!   each value came from.
//!
//! Exit status: 0 on success, 2 on an invalid configuration or invalid
//! arguments (the message, naming the path and the reason, is on stderr), 1 on
//! any other failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use proxy_delegate_config::{Loaded, Loader};
use proxy_delegate_core::model::{ConnectionType, ExchangeId};
use serde::Serialize;

/// Status for an invalid configuration or invalid arguments.
const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "proxy-delegate",
    version,
    about = "Per-exchange proxy resolution with cryptofeed-compatible embedded configuration"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resolve the proxy for one exchange connection.
    ///
    /// Settings come from the `proxy:` block of --config and the
    /// CRYPTOFEED_PROXY_* environment variables (which apply on top). There is
    /// no service client in this build yet: when `external_service.enabled` is
    /// true and --embedded-only is not given, a notice goes to stderr and the
    /// answer comes from the embedded configuration.
    Resolve(ResolveArgs),
    /// Print the effective settings (secrets redacted) and where each value
    /// came from: file, environment or default.
    CheckConfig(CheckArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TypeArg {
    /// REST / plain HTTP(S).
    Http,
    /// WebSocket streams.
    Websocket,
}

impl From<TypeArg> for ConnectionType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::Http => ConnectionType::Http,
            TypeArg::Websocket => ConnectionType::Websocket,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ResolveArgs {
    /// Exchange id, e.g. binance (matched case-insensitively).
    #[arg(long)]
    exchange: String,
    /// Connection type.
    #[arg(long = "type", value_enum)]
    connection_type: TypeArg,
    /// Region to ask the proxy service for (sent to the service; the embedded
    /// configuration has no regions).
    #[arg(long)]
    region: Option<String>,
    /// A cryptofeed config.yaml (settings under `proxy:`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Never contact a proxy service; answer from the embedded configuration.
    #[arg(long)]
    embedded_only: bool,
    /// Resolve this many times in one process (pools advance between picks).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    repeat: u32,
    /// One JSON object per resolution, one per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// A cryptofeed config.yaml (settings under `proxy:`).
    config: PathBuf,
}

/// One resolution, as printed with --json. Field order is the contract's.
#[derive(Debug, Serialize)]
struct Resolution<'a> {
    exchange: &'a str,
    #[serde(rename = "type")]
    connection_type: &'static str,
    proxy_url: Option<String>,
    source: &'static str,
    timeout_seconds: Option<u16>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        Command::Resolve(args) => resolve(&args, &mut out),
        Command::CheckConfig(args) => check_config(&args, &mut out),
    };
    match result.and_then(|()| out.flush().map_err(Failure::from)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Io(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
enum Failure {
    /// Invalid configuration or arguments: exit status 2.
    Invalid(String),
    /// Writing the output failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

fn load(config: Option<&PathBuf>) -> Result<Loaded, Failure> {
    let mut loader = Loader::new();
    if let Some(path) = config {
        loader = loader.yaml_file(path);
    }
    let loaded = loader
        .process_env()
        .load()
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded)
}

fn resolve(args: &ResolveArgs, out: &mut impl Write) -> Result<(), Failure> {
    let exchange = ExchangeId::new(&args.exchange)
        .map_err(|e| Failure::Invalid(format!("--exchange: {}", e.reason)))?;
    let connection_type = ConnectionType::from(args.connection_type);
    let mut loaded = load(args.config.as_ref())?;
    if loaded.settings.external_service.enabled && !args.embedded_only {
        eprintln!(
            "notice: external_service is enabled, but this build has no proxy-service client yet; \
             answering from the embedded configuration (pass --embedded-only to silence this)"
        );
    }
    for _ in 0..args.repeat {
        let pick = loaded.settings.resolve(&exchange, connection_type);
        let (proxy_url, source, timeout_seconds) = match pick {
            Some(p) => (
                Some(p.proxy_url.to_string()),
                "embedded",
                Some(p.timeout_seconds),
            ),
            None => (None, "direct", None),
        };
        let r = Resolution {
            exchange: &args.exchange,
            connection_type: connection_type.as_str(),
            proxy_url,
            source,
            timeout_seconds,
        };
        if args.json {
            let line = serde_json::to_string(&r).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
        } else {
            match (&r.proxy_url, r.timeout_seconds) {
                (Some(url), Some(t)) => writeln!(
                    out,
                    "{} {}: {url} (source {}, timeout {t}s)",
                    r.exchange, r.connection_type, r.source
                )?,
                _ => writeln!(
                    out,
                    "{} {}: direct (source {})",
                    r.exchange, r.connection_type, r.source
                )?,
            }
        }
    }
    Ok(())
}

fn check_config(args: &CheckArgs, out: &mut impl Write) -> Result<(), Failure> {
    let loaded = load(Some(&args.config))?;
    writeln!(out, "# effective proxy settings (secrets shown as ***)")?;
    writeln!(
        out,
        "# <path> = <value>  (<source>: file, environment or default)"
    )?;
    let provenance = loaded.provenance();
    let width = provenance
        .iter()
        .map(|p| p.path.len() + p.value.len() + 3)
        .max()
        .unwrap_or(0);
    for p in &provenance {
        let entry = format!("{} = {}", p.path, p.value);
        writeln!(out, "{entry:<width$}  ({})", p.source)?;
    }
    Ok(())
}
