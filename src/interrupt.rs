//! Ctrl-C (SIGINT) and SIGTERM: a long command stops cleanly instead of dying mid-write. The first signal
//! only sets a flag; the work notices it at its checkpoints ([`check`], the child processes run through
//! [`output`]) and returns [`Interrupted`], so every temporary folder and staging folder is removed as the
//! error unwinds, no output is committed, and no child is left running. A second signal ends the process
//! at once (exit 130), for work that does not reach a checkpoint.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

/// Set by the first SIGINT or SIGTERM once [`install`] ran.
static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// How often a wait for a child process looks at the flag.
const POLL: Duration = Duration::from_millis(100);

/// The error a command returns when it stopped because it was asked to; exit status 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: stopped, and removed what was half done")]
pub struct Interrupted;

/// Installs the handler for SIGINT and SIGTERM. The binary calls it once; the library alone never does.
pub fn install() -> Result<()> {
    let flag = INTERRUPTED.get_or_init(Arc::default);
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The second signal exits at once (registered first, so it sees the flag before the first sets it).
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(flag))?;
        signal_hook::flag::register(signal, Arc::clone(flag))?;
    }
    Ok(())
}

/// Whether a signal asked the process to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|flag| flag.load(Ordering::SeqCst))
}

/// A checkpoint: `Err(Interrupted)` once a signal arrived.
pub fn check() -> Result<(), Interrupted> {
    if interrupted() { Err(Interrupted) } else { Ok(()) }
}

/// Like [`Command::output`] (stdin closed, stdout and stderr captured), but the child runs in a process
/// group of its own, so a terminal's Ctrl-C reaches only confine, and on a signal confine kills and reaps
/// it before returning `Interrupted`: npm is never left behind.
pub fn output(command: &mut Command) -> Result<Output> {
    use std::os::unix::process::CommandExt;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if interrupted() {
            end(&mut child);
            return Err(Interrupted.into());
        }
        std::thread::sleep(POLL);
    };
    let collect = |reader: std::thread::JoinHandle<Vec<u8>>| reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Kills the child and waits for it, so no zombie is left either.
fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end on a thread of its own (so a full pipe never blocks the child).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}
