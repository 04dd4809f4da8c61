//! Inventory scripts: each Mac reports its install back to the MDM from the files the fleet's installer
//! writes (`status.json`, `public-keys.txt` in the support folder; see `pkg/postinstall`'s
//! `write_status` and `pkg/credentials.sh`'s `write_public_keys`).
//!
//! Static POSIX sh (`templates/inventory.sh`), read-only, for any user:
//! - `jamf/<fleet>-<attribute>.sh`: Jamf Pro computer extension attributes (input type script), each
//!   printing `<result>…</result>`: the install result with the checks that failed, the installed release,
//!   each agent's OpenClaw and node versions, each agent's deploy public keys (to register with the forge).
//! - `report.sh`: all of it as `name: value` lines, exit status 1 unless the last install succeeded: a
//!   Kandji custom script (audit), a Fleet script, or any MDM's script runner.
//! - `munki/<fleet>-condition.sh`: a Munki admin-provided condition (run as root from
//!   `/usr/local/munki/conditions`) that writes `confine_<fleet>_install_ok` (bool),
//!   `confine_<fleet>_release` (string) and `confine_<fleet>_failed_checks` (array of `<agent>/<check>`)
//!   into Munki's `ConditionalItems.plist` with `defaults write`, for manifests' `condition` predicates.
//!   The fleet name's `-` become `_`: a predicate's key is an identifier.

use anyhow::{Context as _, Result};
use askama::Template;

use crate::output::{Kind, Staging};
use crate::plan::Plan;

#[derive(Template)]
#[template(path = "inventory.sh")]
struct Inventory<'a> {
    fleet: &'a str,
    support: &'a str,
    mode: &'a str,
    purpose: &'a str,
    usage: &'a str,
    /// The Munki condition keys' prefix.
    condition_key: String,
}

/// The Jamf Pro extension attributes: (file and attribute name suffix, template mode, what it reports).
pub const JAMF_ATTRIBUTES: [(&str, &str, &str); 4] = [
    (
        "install-result",
        "result",
        "the last install's result and the checks that failed",
    ),
    ("release", "release", "the fleet release installed"),
    (
        "openclaw",
        "openclaw",
        "the OpenClaw and node versions each agent runs",
    ),
    (
        "deploy-keys",
        "deploy-keys",
        "each agent's deploy public keys, to register with the forge",
    ),
];

/// Writes `report.sh`, the Munki condition and the Jamf extension attribute scripts.
pub fn write(plan: &Plan, staging: &mut Staging) -> Result<()> {
    staging.write(
        "report.sh",
        Kind::Script,
        &plan.pkg_identifier,
        &report_script(plan)?,
    )?;
    staging.write(
        &format!("munki/{}-condition.sh", plan.fleet.name),
        Kind::Script,
        &plan.pkg_identifier,
        &munki_condition(plan)?,
    )?;
    for (name, script) in jamf_scripts(plan)? {
        staging.write(
            &format!("jamf/{name}.sh"),
            Kind::Script,
            &plan.pkg_identifier,
            &script,
        )?;
    }
    Ok(())
}

/// `report.sh`: every value as `name: value` lines; exit 1 unless the last install succeeded.
pub fn report_script(plan: &Plan) -> Result<Vec<u8>> {
    render(
        plan,
        "report",
        "the install result, release, OpenClaw versions and deploy keys",
        "Kandji: a custom script (audit); Fleet: a script; exit status 1 unless the last install succeeded.",
    )
}

/// The Munki condition script.
pub fn munki_condition(plan: &Plan) -> Result<Vec<u8>> {
    render(
        plan,
        "munki",
        "the install result, release and failed checks as Munki conditions",
        "Munki: copy into /usr/local/munki/conditions (owner root, group wheel, mode 755) on each Mac.",
    )
}

/// Each Jamf extension attribute's name (`<fleet>-<attribute>`) and script.
pub fn jamf_scripts(plan: &Plan) -> Result<Vec<(String, Vec<u8>)>> {
    JAMF_ATTRIBUTES
        .iter()
        .map(|(suffix, mode, purpose)| {
            let script = render(
                plan,
                mode,
                purpose,
                "Jamf Pro: a computer extension attribute, input type script.",
            )?;
            Ok((format!("{}-{suffix}", plan.fleet.name), script))
        })
        .collect()
}

fn render(plan: &Plan, mode: &str, purpose: &str, usage: &str) -> Result<Vec<u8>> {
    let text = Inventory {
        fleet: &plan.fleet.name,
        support: &plan.support_dir,
        mode,
        purpose,
        usage,
        condition_key: format!("confine_{}", plan.fleet.name.replace('-', "_")),
    }
    .render()
    .context("rendering an inventory script")?;
    Ok((text + "\n").into_bytes())
}
