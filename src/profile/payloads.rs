//! The hardening payloads, one builder per spec block, named in Apple's vocabulary.
//!
//! Each builder turns a `hardening.profiles` block and the plan into a [`Profile`] of payload settings and
//! records which spec line each setting came from. Keys follow Apple's Device Management reference: Managed
//! Login Items (`com.apple.servicemanagement`), Firewall (`com.apple.security.firewall`), Login Window
//! (`com.apple.loginwindow`), Accounts (`com.apple.MCX`), Managed Preferences
//! (`com.apple.ManagedClient.preferences`), Privacy Preferences Policy Control
//! (`com.apple.TCC.configuration-profile-policy`), Restrictions (`com.apple.applicationaccess`), System Policy
//! Control and Managed (`com.apple.systempolicy.control`, `.managed`) and Certificate Root
//! (`com.apple.security.root`). Defaults never include a key newer than the fleet's minimum macOS; what the
//! spec writes is checked against it instead.
//!
//! Not supported: PPPC `Allow` rules other than the audit trail's Full Disk Access for Apple's eslogger, per-agent code requirements (one requirement
//! covers every agent's node), and certificate formats other than one PEM or DER certificate.

use std::path::Path;

use plist::{Dictionary, Value};
use serde_saphyr::Location;

use super::catalog::{self, MacOsVersion};
use super::{Origins, Payload, Profile};
use crate::plan::Plan;
use crate::spec::profiles::{
    Certificate, Firewall, Gatekeeper, Grouping, LoginWindow, ManagedLoginItems, Pppc, RawPayload, RawValue,
    Restrictions,
};
use crate::spec::{Located, Problem, Spec};

const TCC: &str = "com.apple.TCC.configuration-profile-policy";
const RESTRICTIONS: &str = "com.apple.applicationaccess";

/// TCC services denied to node by default, in Apple's names. Camera, Microphone, ListenEvent and
/// ScreenCapture can only be denied by a profile anyway; the rest would otherwise prompt or be granted by hand.
const DENIED_SERVICES: &[&str] = &[
    "SystemPolicyAllFiles",
    "SystemPolicySysAdminFiles",
    "SystemPolicyAppBundles",
    "SystemPolicyAppData",
    "SystemPolicyDesktopFolder",
    "SystemPolicyDocumentsFolder",
    "SystemPolicyDownloadsFolder",
    "SystemPolicyNetworkVolumes",
    "SystemPolicyRemovableVolumes",
    "Accessibility",
    "PostEvent",
    "ListenEvent",
    "ScreenCapture",
    "Camera",
    "Microphone",
    "AddressBook",
    "Calendar",
    "Reminders",
    "Photos",
    "MediaLibrary",
    "SpeechRecognition",
    "BluetoothAlways",
    "AppleEvents",
];

/// Apps node may not script through AppleEvents: each could run anything as the agent or read the screen.
const APPLE_EVENT_RECEIVERS: &[&str] = &["com.apple.systemevents", "com.apple.finder", "com.apple.Terminal"];

/// Restrictions written by default. `allowLocalUserCreation` is deliberately absent: confine's installer
/// creates the agent accounts, and Apple does not say whether the restriction also stops `dscl`.
const DEFAULT_RESTRICTIONS: &[&str] = &[
    "allowUIConfigurationProfileInstallation",
    "allowARDRemoteManagementModification",
    "allowRemoteAppleEventsModification",
    "allowFileSharingModification",
    "allowInternetSharingModification",
    "allowPrinterSharingModification",
    "allowBluetoothSharingModification",
    "allowStartupDiskModification",
];

/// A certificate file read for the root payload.
#[derive(Debug)]
pub(crate) struct CertificateFile {
    der: Vec<u8>,
    file_name: String,
    common_name: String,
}

/// Reads a PEM or DER certificate, relative to the spec's folder.
pub(crate) fn load_certificate(block: &Certificate, base_dir: &Path) -> Result<CertificateFile, Problem> {
    let path = base_dir.join(&block.path.value);
    let fail = |message: String| {
        Problem::at(
            &block.path.referenced,
            message,
            "give a PEM or DER certificate file, relative to the spec file",
        )
    };
    let bytes = crate::limits::read_regular(&path, crate::spec::MAX_CERTIFICATE_BYTES)
        .map_err(|e| fail(format!("cannot read certificate: {e:#}")))?;
    let cert = if bytes.starts_with(b"-----BEGIN") {
        openssl::x509::X509::from_pem(&bytes)
    } else {
        openssl::x509::X509::from_der(&bytes)
    }
    .map_err(|_| fail(format!("{} is not a PEM or DER certificate", path.display())))?;
    let der = cert
        .to_der()
        .map_err(|e| fail(format!("cannot encode {}: {e}", path.display())))?;
    let common_name = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_else(|| "Fleet CA".to_owned());
    let file_name = path
        .file_name()
        .map_or_else(|| "ca.cer".to_owned(), |n| n.to_string_lossy().into_owned());
    Ok(CertificateFile {
        der,
        file_name,
        common_name,
    })
}

/// Every enabled profile of the spec, grouped as the spec asks.
pub(crate) fn profiles(
    spec: &Spec,
    plan: &Plan,
    minimum: Option<MacOsVersion>,
    certificate: Option<&CertificateFile>,
) -> Vec<Profile> {
    let p = &spec.hardening.profiles;
    let mut profiles: Vec<Profile> = [
        managed_login_items(&p.managed_login_items, spec, plan),
        firewall(&p.firewall),
        login_window(&p.login_window, plan),
        pppc(&p.pppc, plan, minimum),
        restrictions(&p.restrictions, minimum),
        gatekeeper(&p.gatekeeper),
        certificate
            .zip(p.certificate.as_ref())
            .map(|(file, block)| root_certificate(file, block)),
    ]
    .into_iter()
    .flatten()
    .chain(p.raw.iter().map(raw))
    .collect();
    for profile in &mut profiles {
        profile.display_name = format!("{}: {}", plan.fleet.organization, profile.display_name);
    }
    match p.grouping {
        Grouping::PerConcern => profiles,
        Grouping::Single => vec![single(profiles, &plan.fleet.organization)],
    }
}

fn single(profiles: Vec<Profile>, organization: &str) -> Profile {
    let description = profiles
        .iter()
        .map(|p| p.description.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Profile {
        concern: "hardening".to_owned(),
        display_name: format!("{organization}: Agent host hardening"),
        description,
        payloads: profiles.into_iter().flat_map(|p| p.payloads).collect(),
    }
}

fn profile(concern: &str, display_name: &str, description: &str, payloads: Vec<Payload>) -> Profile {
    Profile {
        concern: concern.to_owned(),
        display_name: display_name.to_owned(),
        description: description.to_owned(),
        payloads,
    }
}

fn payload(payload_type: &str, kind: &str, display_name: &str, settings: Dictionary) -> Payload {
    Payload {
        payload_type: payload_type.to_owned(),
        kind: kind.to_owned(),
        display_name: display_name.to_owned(),
        settings,
        origins: Origins::default(),
    }
}

fn dict<const N: usize>(entries: [(&str, Value); N]) -> Dictionary {
    entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn managed_login_items(block: &ManagedLoginItems, spec: &Spec, plan: &Plan) -> Option<Profile> {
    if !block.enabled {
        return None;
    }
    let mut origins = Origins::default();
    let mut rules: Vec<Value> = plan
        .agents
        .iter()
        .zip(&spec.agents)
        .enumerate()
        .map(|(i, (agent, spec_agent))| {
            if let Some(label) = &spec_agent.launchd.label {
                origins.add(format!("Rules[{i}]"), label.referenced);
            }
            let mut rule = dict([
                ("RuleType", "Label".into()),
                ("RuleValue", agent.launchd.label.clone().into()),
                ("Comment", format!("OpenClaw gateway of {}", agent.name).into()),
            ]);
            if let Some(team) = &block.team_identifier {
                origins.add(format!("Rules[{i}].TeamIdentifier"), team.referenced);
                rule.insert("TeamIdentifier".into(), team.value.clone().into());
            }
            Value::Dictionary(rule)
        })
        .collect();
    // The egress watchdog runs Apple's /bin/sh, so its rule names the label only, never the team.
    if plan.egress.enabled {
        rules.push(Value::Dictionary(dict([
            ("RuleType", "Label".into()),
            ("RuleValue", plan.egress.label.clone().into()),
            ("Comment", "confine egress watchdog (pf)".into()),
        ])));
    }
    let mut p = payload(
        "com.apple.servicemanagement",
        "servicemanagement",
        "Managed Login Items",
        dict([("Rules", Value::Array(rules))]),
    );
    p.origins = origins;
    Some(profile(
        "managed-login-items",
        "Agent daemons (Managed Login Items)",
        "Marks every agent's LaunchDaemon as managed: it stays enabled and cannot be turned off in Login Items.",
        vec![p],
    ))
}

fn firewall(block: &Firewall) -> Option<Profile> {
    if !block.enabled {
        return None;
    }
    let settings = dict([
        ("EnableFirewall", true.into()),
        ("EnableStealthMode", block.stealth_mode.into()),
        ("BlockAllIncoming", block.block_all_incoming.into()),
    ]);
    Some(profile(
        "firewall",
        "Firewall",
        "Turns the application firewall on. The agents' gateways listen on loopback only.",
        vec![payload(
            "com.apple.security.firewall",
            "firewall",
            "Firewall",
            settings,
        )],
    ))
}

fn login_window(block: &LoginWindow, plan: &Plan) -> Option<Profile> {
    if !block.enabled {
        return None;
    }
    let mut payloads = vec![payload(
        "com.apple.loginwindow",
        "loginwindow",
        "Login Window",
        dict([
            ("DisableConsoleAccess", block.disable_console_access.into()),
            ("SHOWFULLNAME", block.show_name_and_password.into()),
        ]),
    )];
    if block.disable_guest_account {
        payloads.push(payload(
            "com.apple.MCX",
            "MCX",
            "Guest account",
            dict([
                ("DisableGuestAccount", true.into()),
                ("EnableGuestAccount", false.into()),
            ]),
        ));
    }
    if block.hide_agents {
        payloads.push(hidden_users(plan));
    }
    Some(profile(
        "login-window",
        "Login window",
        "Keeps the agent accounts off the login window and turns the guest account off.",
        payloads,
    ))
}

/// `HiddenUsersList` is a managed preference of the `com.apple.loginwindow` domain that Apple's Login Window
/// payload does not define, so it goes through Managed Preferences (the MCX form), forced.
fn hidden_users(plan: &Plan) -> Payload {
    let users: Vec<Value> = plan.agents.iter().map(|a| a.name.clone().into()).collect();
    let settings = dict([("HiddenUsersList", Value::Array(users))]);
    let forced = dict([("mcx_preference_settings", settings.into())]);
    let domain = dict([("Forced", Value::Array(vec![forced.into()]))]);
    payload(
        "com.apple.ManagedClient.preferences",
        "ManagedClient.preferences",
        "Hidden agent accounts",
        dict([(
            "PayloadContent",
            dict([("com.apple.loginwindow", domain.into())]).into(),
        )]),
    )
}

fn pppc(block: &Pppc, plan: &Plan, minimum: Option<MacOsVersion>) -> Option<Profile> {
    if !block.enabled {
        return None;
    }
    let requirement = block.code_requirement.as_ref().map_or_else(
        || developer_id_requirement(&block.team_identifier.value),
        |r| r.value.clone(),
    );
    let mut nodes: Vec<&str> = plan.agents.iter().map(|a| a.openclaw.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut origins = Origins::default();
    let mut services = Dictionary::new();
    for (service, location) in denied_services(block, minimum) {
        origins.add(format!("Services.{service}"), location);
        let entries = nodes
            .iter()
            .flat_map(|node| deny_entries(&service, node, &requirement))
            .map(Value::Dictionary)
            .collect();
        services.insert(service, Value::Array(entries));
    }
    if let Some(r) = &block.code_requirement {
        origins.add("Services", r.referenced);
    }
    if plan.audit.is_some() {
        grant_eslogger_full_disk_access(&mut services);
    }
    let mut p = payload(
        TCC,
        "TCC",
        "Privacy: deny node",
        dict([("Services", services.into())]),
    );
    p.origins = origins;
    Some(profile(
        "pppc",
        "Privacy (PPPC): agent runtime denied",
        "Denies the agents' node binary Full Disk Access, Accessibility, screen capture, AppleEvents and other protected services.",
        vec![p],
    ))
}

/// The audit trail (`agents[].audit`) runs `/usr/bin/eslogger`, which Endpoint Security serves only when
/// the responsible process has Full Disk Access (eslogger(1), "TCC AUTHORIZATION"); its launchd job runs it
/// directly, so eslogger is that process. The rule names Apple's binary by path and by its designated
/// requirement, so nothing else at that path matches.
fn grant_eslogger_full_disk_access(services: &mut Dictionary) {
    let entry = dict([
        ("Identifier", crate::audit::daemons::ESLOGGER.into()),
        ("IdentifierType", "path".into()),
        (
            "CodeRequirement",
            "identifier \"com.apple.eslogger\" and anchor apple".into(),
        ),
        ("Allowed", true.into()),
        (
            "Comment",
            "confine: the audit trail's eslogger reads Endpoint Security events".into(),
        ),
    ]);
    let all_files = services
        .entry("SystemPolicyAllFiles")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(entries) = all_files {
        entries.push(Value::Dictionary(entry));
    }
}

/// The services to deny, with the spec line that asked for each (unknown for defaults).
fn denied_services(block: &Pppc, minimum: Option<MacOsVersion>) -> Vec<(String, Location)> {
    match &block.deny {
        Some(list) => list.iter().map(|s| (s.value.clone(), s.referenced)).collect(),
        None => DENIED_SERVICES
            .iter()
            .filter(|s| catalog::catalog().key_available(TCC, &["Services", s], minimum))
            .map(|s| ((*s).to_owned(), Location::UNKNOWN))
            .collect(),
    }
}

/// The designated requirement `codesign -d -r -` prints for a Developer ID signed `node` of this team.
fn developer_id_requirement(team: &str) -> String {
    format!(
        "identifier \"node\" and anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.6] /* exists */ and certificate leaf[field.1.2.840.113635.100.6.1.13] /* exists */ and certificate leaf[subject.OU] = {team}"
    )
}

fn deny_entries(service: &str, node: &str, requirement: &str) -> Vec<Dictionary> {
    let entry = || {
        dict([
            ("Identifier", node.into()),
            ("IdentifierType", "path".into()),
            ("CodeRequirement", requirement.into()),
            ("Allowed", false.into()),
            ("Comment", "confine: the agent runtime never gets this".into()),
        ])
    };
    if service != "AppleEvents" {
        return vec![entry()];
    }
    APPLE_EVENT_RECEIVERS
        .iter()
        .map(|receiver| {
            let mut d = entry();
            d.insert("AEReceiverIdentifier".into(), (*receiver).into());
            d.insert("AEReceiverIdentifierType".into(), "bundleID".into());
            d.insert(
                "AEReceiverCodeRequirement".into(),
                format!("identifier \"{receiver}\" and anchor apple").into(),
            );
            d
        })
        .collect()
}

fn restrictions(block: &Restrictions, minimum: Option<MacOsVersion>) -> Option<Profile> {
    if !block.enabled {
        return None;
    }
    let catalog = catalog::catalog();
    let mut settings: Dictionary = DEFAULT_RESTRICTIONS
        .iter()
        .filter(|k| catalog.key_available(RESTRICTIONS, &[k], minimum))
        .map(|k| ((*k).to_owned(), Value::Boolean(false)))
        .collect();
    let mut origins = Origins::default();
    for (key, value) in &block.settings {
        settings.insert(key.clone(), plist_value(value, key, &mut origins));
    }
    let mut p = payload(RESTRICTIONS, "applicationaccess", "Restrictions", settings);
    p.origins = origins;
    Some(profile(
        "restrictions",
        "Restrictions",
        "Stops profile and certificate installation from the UI, and changes to sharing, remote management and the startup disk.",
        vec![p],
    ))
}

fn gatekeeper(block: &Gatekeeper) -> Option<Profile> {
    if !block.enabled {
        return None;
    }
    let mut control = payload(
        "com.apple.systempolicy.control",
        "systempolicy.control",
        "Gatekeeper",
        dict([
            ("EnableAssessment", true.into()),
            (
                "AllowIdentifiedDevelopers",
                block.allow_identified_developers.into(),
            ),
        ]),
    );
    if let Some(upload) = &block.enable_xprotect_malware_upload {
        control
            .settings
            .insert("EnableXProtectMalwareUpload".into(), upload.value.into());
        control
            .origins
            .add("EnableXProtectMalwareUpload", upload.referenced);
    }
    let mut payloads = vec![control];
    if block.disable_override {
        payloads.push(payload(
            "com.apple.systempolicy.managed",
            "systempolicy.managed",
            "Gatekeeper override",
            dict([("DisableOverride", true.into())]),
        ));
    }
    Some(profile(
        "gatekeeper",
        "Gatekeeper",
        "Keeps Gatekeeper on and removes the Finder's override.",
        payloads,
    ))
}

fn root_certificate(file: &CertificateFile, block: &Certificate) -> Profile {
    let mut p = payload(
        "com.apple.security.root",
        "root",
        &file.common_name,
        dict([
            ("PayloadCertificateFileName", file.file_name.clone().into()),
            ("PayloadContent", Value::Data(file.der.clone())),
        ]),
    );
    p.origins.add("", block.path.referenced);
    profile(
        "certificate",
        "Fleet certificate authority",
        "Trusts the fleet's own certificate authority system-wide.",
        vec![p],
    )
}

fn raw(block: &RawPayload) -> Profile {
    let mut origins = Origins::default();
    origins.add("", block.payload_type.referenced);
    let settings = block
        .settings
        .iter()
        .map(|(key, value)| (key.clone(), plist_value(value, key, &mut origins)))
        .collect();
    let name = &block.name.value;
    let mut p = payload(&block.payload_type.value, name, name, settings);
    p.origins = origins;
    profile(
        name,
        name,
        &format!("{} settings written in the fleet spec.", block.payload_type.value),
        vec![p],
    )
}

/// A YAML value as a plist value, recording the spec line of every element under `path`.
fn plist_value(value: &Located<RawValue>, path: &str, origins: &mut Origins) -> Value {
    origins.add(path, value.referenced);
    match &value.value {
        RawValue::Boolean(b) => Value::Boolean(*b),
        RawValue::Integer(n) => Value::Integer((*n).into()),
        RawValue::Real(r) => Value::Real(*r),
        RawValue::String(s) => Value::String(s.clone()),
        RawValue::Data(bytes) => Value::Data(bytes.clone()),
        // The spec checked the format; an unparsable date cannot reach here, but stays a string if it did.
        RawValue::Date(text) => {
            plist::Date::from_xml_format(text).map_or_else(|_| Value::String(text.clone()), Value::Date)
        }
        RawValue::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| plist_value(item, &format!("{path}[{i}]"), origins))
                .collect(),
        ),
        RawValue::Dictionary(entries) => Value::Dictionary(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), plist_value(v, &format!("{path}.{k}"), origins)))
                .collect(),
        ),
    }
}
