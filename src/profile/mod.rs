//! Configuration profiles (`.mobileconfig`): the hardening profiles of a fleet, built from the spec and
//! checked against confine's payload catalog before they are written.
//!
//! A profile is a property list whose top level has `PayloadType` `Configuration`, `PayloadVersion` 1, a
//! `PayloadIdentifier`, a `PayloadUUID` and a `PayloadContent` array of payload dictionaries, each carrying
//! the same four keys plus its own settings. Apple documents the format in its Device Management reference
//! (<https://developer.apple.com/documentation/devicemanagement/toplevel>).
//!
//! confine writes one profile per concern (`<fleet.identifier>.profile.<concern>`), each payload named
//! `<profile id>.<payload kind>`, always `PayloadScope` System (an agent account never logs in, so it never
//! receives user-channel profiles) and `TargetDeviceType` 5 (Mac). Every `PayloadUUID` is a UUIDv5 of its
//! identifier in a fixed confine namespace, so the same spec always gives the same bytes: git diffs stay
//! meaningful, re-uploads are idempotent, and macOS updates payloads in place. The XML is canonical: keys
//! sorted recursively, tab indentation as the plist crate writes it, a trailing newline.
//!
//! Not supported: encrypted profiles (`IsEncrypted`), removal passcodes, `RemovalDate`, and signing (done
//! by [`crate::sign`]). [`validate_file`] reads XML, binary and CMS-signed profiles but does not check the
//! signer's chain.

mod catalog;
mod payloads;
pub(crate) mod reader;

use std::fmt;
use std::path::Path;

use anyhow::{Context as _, Result};
use plist::{Dictionary, Value};
use serde_saphyr::Location;
use uuid::Uuid;

use catalog::MacOsVersion;

use crate::limits::{MAX_PROFILE_BYTES, read_file_within};
use crate::plan::Plan;
use crate::sign::{self, ProfileEncoding};
use crate::spec::{LoadedSpec, Problem, Spec, SpecError};

/// The namespace of every confine `PayloadUUID`: UUIDv5 of the DNS name `profiles.confine`. Changing it
/// would make every Mac treat every payload as new.
const NAMESPACE: Uuid = Uuid::from_u128(0x509e_984a_7976_5eed_b7e9_6977_f4f1_0b73);

/// `TargetDeviceType` of a Mac.
const TARGET_MAC: i64 = 5;

/// One configuration profile, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltProfile {
    /// `<identifier>.mobileconfig`.
    pub file_name: String,
    /// The top-level `PayloadIdentifier`, e.g. `com.halfday.agents.profile.firewall`.
    pub identifier: String,
    pub display_name: String,
    /// The unsigned XML property list.
    pub xml: Vec<u8>,
    /// How the profile must be delivered (user-approved MDM, no manual install, supervision).
    pub notes: Vec<String>,
    /// Catalog warnings (e.g. a raw PayloadType confine does not know). Errors stop the build instead.
    pub warnings: Vec<Finding>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong with a profile, at a path such as `PayloadContent[0].EnableFirewall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Where in the profile: dictionary keys joined by `.`, array indices in brackets; empty for the top.
    pub path: String,
    pub message: String,
    /// Whether the finding is about the fleet's minimum macOS (reported at `fleet.minimum_macos` when the
    /// offending value has no spec line of its own).
    version_gate: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.path.is_empty() {
            write!(f, "{severity}: {}", self.message)
        } else {
            write!(f, "{severity}: {}: {}", self.path, self.message)
        }
    }
}

/// A profile as the builders assemble it: identifiers, UUIDs and common keys are added when it is rendered.
#[derive(Debug)]
pub(crate) struct Profile {
    /// Last component of the identifier: `firewall`, `pppc`, …
    pub(crate) concern: String,
    pub(crate) display_name: String,
    pub(crate) description: String,
    pub(crate) payloads: Vec<Payload>,
}

/// One payload: its type, the kind that names it inside the profile, and its own settings.
#[derive(Debug)]
pub(crate) struct Payload {
    pub(crate) payload_type: String,
    pub(crate) kind: String,
    pub(crate) display_name: String,
    pub(crate) settings: Dictionary,
    /// Where in the spec each setting came from.
    pub(crate) origins: Origins,
}

/// Spec locations of settings, by path inside the payload (`Services.ScreenCapture`, `Rules[0]`; empty for
/// the whole payload). A finding is reported at the longest path that contains it.
#[derive(Debug, Default)]
pub(crate) struct Origins(Vec<(String, Location)>);

impl Origins {
    pub(crate) fn add(&mut self, path: impl Into<String>, location: Location) {
        if location != Location::UNKNOWN {
            self.0.push((path.into(), location));
        }
    }

    fn find(&self, path: &str) -> Option<Location> {
        self.0
            .iter()
            .filter(|(p, _)| contains_path(p, path))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, location)| *location)
    }
}

/// Whether `outer` is `inner` or one of its ancestors.
fn contains_path(outer: &str, inner: &str) -> bool {
    outer.is_empty()
        || inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
}

/// What every profile of the fleet shares.
struct Context<'a> {
    spec: &'a Spec,
    plan: &'a Plan,
    minimum: Option<MacOsVersion>,
}

/// Builds and checks every enabled profile. A catalog violation is a [`SpecError`] naming the spec line
/// that produced the value; its file is shown as `fleet spec` (use [`build_loaded`] to name the real file).
pub fn build(spec: &Spec, plan: &Plan, base_dir: &Path) -> Result<Vec<BuiltProfile>> {
    build_named(spec, plan, base_dir, Path::new("fleet spec"))
}

/// [`build`] for a loaded spec: errors name the spec's file, and relative paths resolve against its folder.
pub fn build_loaded(loaded: &LoadedSpec, plan: &Plan) -> Result<Vec<BuiltProfile>> {
    build_named(&loaded.spec, plan, &loaded.base_dir, &loaded.origin)
}

fn build_named(spec: &Spec, plan: &Plan, base_dir: &Path, spec_file: &Path) -> Result<Vec<BuiltProfile>> {
    let fail = |problems| SpecError {
        file: spec_file.to_path_buf(),
        problems,
    };
    let certificate = match &spec.hardening.profiles.certificate {
        Some(block) => Some(payloads::load_certificate(block, base_dir).map_err(|p| fail(vec![p]))?),
        None => None,
    };
    let (built, problems) = build_all(spec, plan, certificate.as_ref());
    if problems.is_empty() {
        Ok(built)
    } else {
        Err(fail(problems).into())
    }
}

fn build_all(
    spec: &Spec,
    plan: &Plan,
    certificate: Option<&payloads::CertificateFile>,
) -> (Vec<BuiltProfile>, Vec<Problem>) {
    let ctx = Context {
        spec,
        plan,
        minimum: MacOsVersion::parse(&plan.fleet.minimum_macos),
    };
    let mut built = Vec::new();
    let mut problems = Vec::new();
    for profile in payloads::profiles(spec, plan, ctx.minimum, certificate) {
        match render(&ctx, &profile) {
            Ok(b) => built.push(b),
            Err(mut p) => problems.append(&mut p),
        }
    }
    (built, problems)
}

/// Renders one profile and checks it against the catalog.
fn render(ctx: &Context<'_>, profile: &Profile) -> Result<BuiltProfile, Vec<Problem>> {
    let identifier = format!("{}.profile.{}", ctx.plan.fleet.identifier, profile.concern);
    let mut value = Value::Dictionary(top_level(ctx, profile, &identifier));
    sort_keys(&mut value);
    let (errors, warnings): (Vec<Finding>, Vec<Finding>) = catalog::catalog()
        .check_profile(&value, ctx.minimum)
        .into_iter()
        .partition(|f| f.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|f| problem(ctx, profile, &identifier, f))
            .collect());
    }
    let mut xml = Vec::new();
    // Writing to a Vec cannot fail for a value built from strings, numbers and dictionaries.
    if let Err(e) = value.to_writer_xml(&mut xml) {
        return Err(vec![Problem::at(
            &Location::UNKNOWN,
            format!("{identifier}: cannot write the profile: {e}"),
            "",
        )]);
    }
    xml.push(b'\n');
    Ok(BuiltProfile {
        file_name: format!("{identifier}.mobileconfig"),
        display_name: profile.display_name.clone(),
        notes: notes(profile),
        warnings,
        xml,
        identifier,
    })
}

fn top_level(ctx: &Context<'_>, profile: &Profile, identifier: &str) -> Dictionary {
    let organization = &ctx.plan.fleet.organization;
    let settings = &ctx.spec.hardening.profiles;
    let mut top = Dictionary::new();
    let content: Vec<Value> = profile
        .payloads
        .iter()
        .map(|p| payload_dict(p, identifier, organization))
        .collect();
    top.insert("PayloadContent".into(), Value::Array(content));
    top.insert("PayloadDescription".into(), profile.description.clone().into());
    top.insert("PayloadDisplayName".into(), profile.display_name.clone().into());
    top.insert("PayloadIdentifier".into(), identifier.into());
    top.insert("PayloadOrganization".into(), organization.clone().into());
    top.insert(
        "PayloadRemovalDisallowed".into(),
        settings.removal_disallowed.into(),
    );
    top.insert("PayloadScope".into(), "System".into());
    top.insert("PayloadType".into(), "Configuration".into());
    top.insert("PayloadUUID".into(), payload_uuid(identifier).into());
    top.insert("PayloadVersion".into(), Value::Integer(1.into()));
    top.insert("TargetDeviceType".into(), Value::Integer(TARGET_MAC.into()));
    if let Some(text) = &settings.consent_text {
        let mut consent = Dictionary::new();
        consent.insert("default".into(), text.value.clone().into());
        top.insert("ConsentText".into(), consent.into());
    }
    top
}

fn payload_dict(payload: &Payload, profile_id: &str, organization: &str) -> Value {
    let identifier = format!("{profile_id}.{}", payload.kind);
    let mut d = payload.settings.clone();
    d.insert("PayloadDisplayName".into(), payload.display_name.clone().into());
    d.insert("PayloadIdentifier".into(), identifier.clone().into());
    d.insert("PayloadOrganization".into(), organization.into());
    d.insert("PayloadType".into(), payload.payload_type.clone().into());
    d.insert("PayloadUUID".into(), payload_uuid(&identifier).into());
    d.insert("PayloadVersion".into(), Value::Integer(1.into()));
    Value::Dictionary(d)
}

/// UUIDv5 of the identifier, upper-case as Apple's tools write it.
fn payload_uuid(identifier: &str) -> String {
    Uuid::new_v5(&NAMESPACE, identifier.as_bytes())
        .hyphenated()
        .to_string()
        .to_uppercase()
}

/// Sorts every dictionary's keys, so the XML depends only on content.
fn sort_keys(value: &mut Value) {
    match value {
        Value::Dictionary(d) => {
            d.sort_keys();
            for (_, v) in d.iter_mut() {
                sort_keys(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// A catalog error as a spec problem, at the spec line of the offending value.
fn problem(ctx: &Context<'_>, profile: &Profile, identifier: &str, finding: &Finding) -> Problem {
    let location = locate(profile, &finding.path)
        .or_else(|| {
            finding
                .version_gate
                .then_some(ctx.spec.fleet.minimum_macos.referenced)
        })
        .unwrap_or(Location::UNKNOWN);
    let help = if finding.version_gate {
        "raise `fleet.minimum_macos`, or remove the setting"
    } else {
        "confine holds every profile to Apple's Device Management reference (see profiles/ in confine's source)"
    };
    let at = if finding.path.is_empty() {
        String::new()
    } else {
        format!(" {}", finding.path)
    };
    Problem::at(
        &location,
        format!("profile {identifier}{at}: {}", finding.message),
        help,
    )
}

/// The spec location of a finding's path (`PayloadContent[2].Services.X` → payload 2, `Services.X`).
fn locate(profile: &Profile, path: &str) -> Option<Location> {
    let rest = path.strip_prefix("PayloadContent[")?;
    let (index, rest) = rest.split_once(']')?;
    let payload = profile.payloads.get(index.parse::<usize>().ok()?)?;
    payload.origins.find(rest.strip_prefix('.').unwrap_or(rest))
}

/// Delivery requirements of a profile's payloads, from the catalog.
fn notes(profile: &Profile) -> Vec<String> {
    let catalog = catalog::catalog();
    let mut notes = Vec::new();
    for payload in &profile.payloads {
        let Some(schema) = catalog.payload(&payload.payload_type) else {
            continue;
        };
        let t = &payload.payload_type;
        if schema.user_approved_mdm {
            notes.push(format!(
                "{t} only takes effect on Macs with user-approved MDM enrollment (or Automated Device Enrollment)"
            ));
        }
        if !schema.manual_install {
            notes.push(format!(
                "{t} cannot be installed by opening the file: deliver the profile through MDM"
            ));
        }
        if schema.supervised {
            notes.push(format!("{t} only applies to supervised Macs"));
        }
    }
    notes
}

/// Checks an existing profile (XML, binary, or CMS-signed DER) against the catalog, without a fleet: keys
/// newer than some minimum macOS are not errors here.
pub fn validate_file(path: &Path) -> Result<Vec<Finding>> {
    let bytes = read_file_within(path, MAX_PROFILE_BYTES)?;
    validate_bytes(&bytes, None).with_context(|| format!("checking {}", path.display()))
}

/// Checks profile bytes (XML, binary, or CMS-signed DER) against the catalog, for a fleet whose oldest Mac
/// runs `minimum_macos` (version gates are skipped without one).
pub fn validate_bytes(bytes: &[u8], minimum_macos: Option<&str>) -> Result<Vec<Finding>> {
    let minimum = match minimum_macos {
        Some(text) => {
            Some(MacOsVersion::parse(text).with_context(|| format!("`{text}` is not a macOS version"))?)
        }
        None => None,
    };
    let plist = unwrap_signed(bytes)?;
    let value = reader::parse_plist(&plist)?;
    let mut findings = catalog::catalog().check_profile(&value, minimum);
    findings.sort_by(|a, b| (a.severity, &a.path).cmp(&(b.severity, &b.path)));
    Ok(findings)
}

/// The plist inside a CMS-signed profile, or the bytes as they are. The signature must match the content;
/// the signer's certificate chain is not checked.
fn unwrap_signed(bytes: &[u8]) -> Result<Vec<u8>> {
    match sign::profile_encoding(bytes) {
        ProfileEncoding::SignedCms => Ok(sign::verify_profile(bytes, None)
            .context("the profile's CMS signature does not match its content")?
            .content),
        _ => Ok(bytes.to_vec()),
    }
}
