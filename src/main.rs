//! `tandem`: serve (default) or migrate.

use std::process::ExitCode;

use clap::Parser;
use tandem::core::config::{Cli, Command, Config};

/// mimalloc instead of glibc's malloc: the server allocates per request and
/// per frame from many threads, and glibc's allocator was about 10 % of the
/// HTTP workers' samples (`_int_malloc`, `malloc_consolidate`, ...) in `flash-sale`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option that commits its arenas page by page as they are used
/// (so freed pages can be returned) instead of all at once. With eager
/// commit, mimalloc's default on Linux, each idle WebSocket cost about 20 KB
/// of resident memory instead of 12 KB (`connections`: the growth of the
/// second half of 15,000 sockets; BENCHMARKS.md).
const ALLOCATOR_OPTION: (&str, &str) = ("MIMALLOC_ARENA_EAGER_COMMIT", "0");

/// The allocator reads its options from the environment before `main` runs,
/// so a process started without it set starts over (same pid, arguments and
/// descriptors) with it set. An operator's own value is left alone.
fn with_allocator_options() {
    use std::os::unix::process::CommandExt;
    let (name, value) = ALLOCATOR_OPTION;
    if std::env::var_os(name).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    // The same argv[0]: the process looks as it was started (ps, pkill -f).
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(name, value)
        .exec();
    // Only reached if exec failed: serve with the allocator's defaults.
    eprintln!("note: could not restart with {name}={value} ({err}); idle sockets use more memory");
}

fn main() -> ExitCode {
    with_allocator_options();
    // `tandem --listen ...` serves like `tandem serve --listen ...`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let serve_flag = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| a.starts_with('-') && !matches!(a, "-h" | "--help" | "-V" | "--version"));
    if serve_flag {
        args.insert(1, "serve".into());
    }
    let cli = Cli::parse_from(args);
    let command = match cli.command {
        Some(c) => c,
        None => match Config::from_env() {
            Ok(c) => Command::Serve(Box::new(c)),
            Err(e) => e.exit(),
        },
    };
    let result = match command {
        Command::Serve(config) => {
            tandem::runtime::telemetry::init(&config.log, config.log_format);
            // Every socket is a file: raise the soft limit to the hard one.
            match rlimit::increase_nofile_limit(u64::MAX) {
                Ok(n) => tracing::info!(open_files = n, "open-file limit"),
                Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
            }
            actix_web::rt::System::new().block_on(tandem::server::app::serve(*config))
        }
        Command::Audit(args) => {
            tandem::runtime::telemetry::init("warn", tandem::core::config::LogFormat::Text);
            match tandem::server::app::audit(&args.database_url) {
                Ok(problems) if problems.is_empty() => {
                    println!("audit: ok");
                    Ok(())
                }
                Ok(problems) => {
                    for p in &problems {
                        println!("mismatch: {p}");
                    }
                    Err(anyhow::anyhow!(
                        "audit found {} mismatch(es)",
                        problems.len()
                    ))
                }
                Err(e) => Err(e),
            }
        }
        Command::Migrate(args) => {
            tandem::runtime::telemetry::init("info", tandem::core::config::LogFormat::Text);
            tandem::server::app::migrate(&args.database_url).map(|(_, applied)| {
                println!("applied {applied} migration(s) to {:?}", args.database_url);
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "tandem failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
