//! `/etc/newsyslog.d/confine-<fleet>.conf`: rotation of the gateways' stdout and stderr, the files
//! launchd opens for each agent's daemon (`StandardOutPath`, `StandardErrorPath`).
//!
//! newsyslog(8) reads `/etc/newsyslog.d/*.conf` besides `/etc/newsyslog.conf`; a line is `logfile
//! owner:group mode count size when flags` (newsyslog.conf(5)). launchd keeps those files open for the
//! life of the job and cannot be told to reopen them, and BSD newsyslog has no copy-and-truncate. So:
//! - flag `N`: there is no process to signal;
//! - no compression flag (`Z`, `J`): after a rotation the gateway keeps appending to `.0` until its next
//!   start (every install and reboot restarts it), and compressing `.0` would unlink the file it writes;
//! - newsyslog runs as root and, after each rename, chmod(2)s and chown(2)s the archive *by path*, following
//!   links: so nothing it rotates may sit in a folder the agent can change. The agent's log folder is
//!   root's (0755); only the two files in it are the agent's. launchd opens `StandardOutPath` and
//!   `StandardErrorPath` after dropping to `UserName` (launchd's `job_start_child` calls
//!   `job_postfork_become_user` before `job_setup_fd(..., O_WRONLY|O_APPEND|O_CREAT)`), so the postinstall
//!   creates them, the agent's, beforehand; OpenClaw's own log is in a folder of the agent's below it
//!   ([`crate::plan::OPENCLAW_LOG_DIR`]), which nothing of root's rotates.
//!
//! It also rotates the audit daemons' stderr, root-only like the folder it is in. The volume lives
//! elsewhere: OpenClaw writes its real log to `logging.file`, which it rotates itself,
//! and prints only warnings to the console. The audit trail rotates itself too (see [`super`]).

use std::fmt::Write;

use crate::plan::Plan;

/// Size in KiB at which a gateway's stdout or stderr is rotated, and the archives kept.
const SIZE_KB: u32 = 1024;
const COUNT: u32 = 3;

/// The newsyslog.d file of the fleet: the gateways' stdout and stderr, the audit daemons' stderr.
pub fn conf(plan: &Plan) -> Vec<u8> {
    let mut out = format!(
        "# confine {}: the gateways' stdout and stderr. launchd holds them open: no signal (N), no\n\
         # compression; the gateway writes to .0 until its next start. Written by the package, do not edit.\n\
         # logfile                                        owner:group mode count size when flags\n",
        plan.fleet.name
    );
    for agent in &plan.agents {
        for stream in ["out", "err"] {
            let path = format!("{}/gateway.{stream}.log", agent.log_dir);
            let _ = writeln!(out, "{path:<48} {}:80 640 {COUNT} {SIZE_KB} * N", agent.uid);
        }
    }
    // The audit daemons' own messages (an eslogger without Full Disk Access says so at every restart).
    if let Some(trail) = &plan.audit {
        for daemon in ["eslogger", "collector"] {
            let path = format!("{}/{daemon}.err.log", trail.dir);
            let _ = writeln!(out, "{path:<48} 0:0 600 {COUNT} {SIZE_KB} * N");
        }
    }
    out.into_bytes()
}
