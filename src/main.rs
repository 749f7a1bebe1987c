//! `tandem`: serve (default) or migrate.

use std::process::ExitCode;

use clap::Parser;
use tandem::core::config::{Cli, Command, Config};

/// mimalloc instead of glibc's malloc: the server allocates per request and
/// per frame from many threads, and glibc's allocator was about 10 % of the
/// HTTP workers' samples (`_int_malloc`, `malloc_consolidate`, ...) in `flash-sale`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
