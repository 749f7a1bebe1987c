//! The faults of `chaos`: the server process the harness owns (started from
//! `--server-cmd`, killed with SIGKILL, started again) and the services it
//! restarts in between (`--restart-cmd NAME=CMD`), on a printed schedule.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::api::Api;

/// How long a server may take to answer `/ready` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a `--restart-cmd` may run.
const RESTART_CMD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the harness waits for readiness after a fault before it calls
/// the recovery failed (the check itself asks for at most 5 s).
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two readiness probes.
const READY_POLL: Duration = Duration::from_millis(50);

/// The server under test: a shell running `--server-cmd` in a process group
/// of its own, so a kill reaches the server and anything it started.
pub(super) struct Server {
    cmd: String,
    log_path: std::path::PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Server {
    pub(super) fn new(cmd: &str, log_path: std::path::PathBuf) -> Self {
        Server {
            cmd: cmd.to_owned(),
            log_path,
            child: None,
            starts: 0,
        }
    }

    /// Starts the command; its output is appended to the log file.
    pub(super) fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let err = log.try_clone()?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(&self.cmd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the server: {}", self.cmd))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL to the whole process group, then reaps the shell.
    pub(super) fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        // `kill` the program: a negative pid names the process group, which
        // `Child::kill` (the shell's pid only) would not reach.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The server's exit status if it has ended by itself.
    pub(super) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Server {
    /// The run never leaves a server behind, whatever ends it.
    fn drop(&mut self) {
        self.kill();
    }
}

/// One kind of fault.
#[derive(Clone, Debug)]
pub(super) enum Fault {
    Kill,
    Restart { name: String, cmd: String },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Kill => f.write_str("kill -9 the server and start it again"),
            Fault::Restart { name, .. } => write!(f, "restart {name}"),
        }
    }
}

/// `NAME=CMD` pairs, in the order given.
pub(super) fn parse_restarts(specs: &[String]) -> anyhow::Result<Vec<Fault>> {
    specs
        .iter()
        .map(|s| match s.split_once('=') {
            Some((name, cmd)) if !name.trim().is_empty() && !cmd.trim().is_empty() => {
                Ok(Fault::Restart {
                    name: name.trim().to_owned(),
                    cmd: cmd.to_owned(),
                })
            }
            _ => bail!("--restart-cmd must be NAME=CMD, not {s:?}"),
        })
        .collect()
}

/// The `k`th fault: kills, with each restart command in turn between them.
pub(super) fn fault_at(k: usize, restarts: &[Fault]) -> Fault {
    if restarts.is_empty() || k.is_multiple_of(2) {
        Fault::Kill
    } else {
        restarts[(k / 2) % restarts.len()].clone()
    }
}

/// What one fault cost.
#[derive(Clone, Debug)]
pub(super) struct Injected {
    pub(super) at_s: f64,
    pub(super) fault: String,
    /// From the fault (the kill, or the restart command's end) to `/ready` 200.
    pub(super) recovery_ms: Option<u64>,
}

/// Injects faults every `interval` until `until`, then returns what each cost.
/// Any server that died by itself meanwhile is started again and reported.
pub(super) async fn inject(
    server: &mut Server,
    api: &Api,
    restarts: &[Fault],
    interval: Duration,
    start: Instant,
    until: Instant,
) -> Vec<Injected> {
    let mut out = Vec::new();
    for k in 0.. {
        let at = start + interval * u32::try_from(k + 1).unwrap_or(u32::MAX);
        if at >= until {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let fault = fault_at(k, restarts);
        let recovery_ms = apply(server, api, &fault).await;
        let at_s = start.elapsed().as_secs_f64();
        match recovery_ms {
            Some(ms) => println!("fault {k} at {at_s:.1} s: {fault}: ready after {ms} ms"),
            None => println!("fault {k} at {at_s:.1} s: {fault}: NOT ready again"),
        }
        out.push(Injected {
            at_s,
            fault: fault.to_string(),
            recovery_ms,
        });
    }
    out
}

async fn apply(server: &mut Server, api: &Api, fault: &Fault) -> Option<u64> {
    match fault {
        Fault::Kill => {
            // Blocking (a `kill` process, a wait, a spawn): off the async workers' turn.
            let t0 = Instant::now();
            if let Err(e) = tokio::task::block_in_place(|| {
                server.kill();
                server.spawn()
            }) {
                eprintln!("error: {e:#}");
                return None;
            }
            wait_ready(api, server, RECOVERY_TIMEOUT).await.ok()?;
            Some(millis(t0.elapsed()))
        }
        Fault::Restart { name, cmd } => {
            if let Err(e) = run_shell(cmd, RESTART_CMD_TIMEOUT).await {
                eprintln!("error: restarting {name}: {e:#}");
            }
            let t0 = Instant::now();
            wait_ready(api, server, RECOVERY_TIMEOUT).await.ok()?;
            Some(millis(t0.elapsed()))
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Polls `/ready` on every node until all answer 200.
pub(super) async fn wait_ready(
    api: &Api,
    server: &mut Server,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut all = true;
        for base in &api.bases {
            let node = Api::new(std::slice::from_ref(base), 1)?;
            all &= matches!(
                node.http.request("GET", "/ready", &[], &[]).await,
                Ok((200, _))
            );
        }
        if all {
            return Ok(());
        }
        if let Some(status) = server.exited() {
            bail!("the server exited ({status}); see its log");
        }
        if Instant::now() >= deadline {
            bail!("not ready within {} s", timeout.as_secs());
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// The first start: readiness within `START_TIMEOUT`. Something else
/// already answering at the target would be measured instead of the server
/// the harness owns (and outlive its kills): refused.
pub(super) async fn first_start(server: &mut Server, api: &Api) -> anyhow::Result<()> {
    for base in &api.bases {
        let node = Api::new(std::slice::from_ref(base), 1)?;
        if node.http.request("GET", "/health", &[], &[]).await.is_ok() {
            bail!("something already answers at {base}: stop it first (the harness starts the server itself)");
        }
    }
    server.spawn()?;
    wait_ready(api, server, START_TIMEOUT)
        .await
        .context("the server did not become ready")
}

/// Runs a shell command to its end (bounded); its output goes to ours.
pub(super) async fn run_shell(cmd: &str, timeout: Duration) -> anyhow::Result<()> {
    let cmd = cmd.to_owned();
    let run = tokio::task::spawn_blocking(move || Command::new("sh").arg("-c").arg(&cmd).status());
    let status = tokio::time::timeout(timeout, run)
        .await
        .context("timed out")???;
    if !status.success() {
        bail!("exited with {status}");
    }
    Ok(())
}
