//! Jamf Pro: the package through the Jamf Pro API (`/api/v1/packages`, multipart upload, the record's
//! SHA3-512 confirmed afterwards), the profiles through the Classic API (`/JSSResource`, XML), and a policy
//! that installs the package once per computer at check-in and enrollment.
//!
//! Identifiers: the package record carries `confine-id: <package identifier>` in its notes, each profile
//! `confine-id: <profile identifier>` in its description, and the policy uses the package identifier as
//! its custom trigger (so `sudo jamf policy -event <identifier>` also installs the agent). The package is
//! found by its notes in the whole package list; profiles and the policy by name, then checked by their
//! identifier, so confine never takes over an object it did not create.
//!
//! An updated profile keeps the `PayloadUUID` and `PayloadIdentifier` Jamf gave it, so Macs replace it
//! instead of installing a second one, and is redeployed to every Mac in scope (`redeploy_profiles`).
//!
//! Classic `<payloads>` and Jamf's PI-827 (wire-verified: Jamf-Concepts/jamf-cli PRs #310 and #311, its
//! design note `classic-profile-payload-ampersand-escaping`, jamf/terraform-provider-jamfplatform PR
//! #305): the Classic API entity-decodes `<payloads>` once more than XML does, then stores each payload
//! by type. Types it re-renders (custom settings, notifications) come out as sent; every other type
//! (TCC/PPPC, login window, firewall…) is stored verbatim, that is with one entity layer too many. So
//! confine sends the plist with every avoidable character reference written as its character (only
//! `&`, `<` and a carriage return stay references), each `&` escaped once more, inside CDATA; refuses a
//! verbatim-stored payload holding `&` or `<`, which no client can store faithfully; and reads each
//! written profile back, a difference being an error that names the key.
//!
//! The package: confine sends its SHA3-512 and MD5 with the record (Jamf needs the MD5 for PreStage
//! enrollment packages), uploads, asks the cloud distribution point to refresh its inventory (Jamf
//! computes a file's hashes only then; a replaced file keeps the old ones until it does), and reads the
//! record until its `sha3512` is the file's. The policy carries the package's SHA-256 in its (hidden)
//! Self Service description: when it names another file, the policy's log is flushed before the
//! policy is rewritten, so "once per computer" runs again on every Mac, even when an earlier push
//! stopped after the upload. The policy also updates inventory after the install (`recon`).

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::http::{Auth, Body, Client, Retry, percent_encode};
use super::multipart::Multipart;
use super::normalize;
use super::{Action, Build, Listing, Object, PushOptions, create_once, created, find_named, xml_escape};
use crate::pkg::{Element, parse_xml};
use crate::spec::mdm::Jamf;

/// How often the package record is read back while Jamf Pro computes the uploaded file's hash.
const HASH_POLLS: u32 = 60;

pub fn credentials(config: &Jamf) -> Result<Auth> {
    Ok(Auth::JamfClient {
        client_id: super::env_secret(&config.client_id_env.value, "Jamf Pro API client id")?,
        client_secret: super::env_secret(&config.client_secret_env.value, "Jamf Pro API client secret")?,
        token: None,
    })
}

/// A Jamf record named by id and name (computer group, category).
#[derive(Debug, Clone, Deserialize)]
struct Named {
    id: String,
    name: String,
}

pub fn push(
    client: &Client,
    config: &Jamf,
    build: &Build,
    options: &PushOptions,
    objects: &mut Vec<Object>,
) -> Result<()> {
    let groups = computer_groups(client, config)?;
    let category = match &config.category {
        Some(name) => Some(category(client, &name.value)?),
        None => None,
    };
    // Refused before anything is written: a profile Jamf would store differently than built.
    for profile in &build.profiles {
        storable(profile)?;
    }
    let scope = Scope {
        category: category.as_ref(),
        groups: &groups,
    };
    let package = package(client, build, scope.category, options)?;
    let package_id = package.id.clone();
    objects.push(package);
    for profile in &build.profiles {
        objects.push(self::profile(client, config, profile, &scope, options)?);
    }
    objects.push(policy(client, build, package_id.as_deref(), &scope, options)?);
    super::jamf_inventory::push(client, build, options, objects)
}

/// The scope the spec gives Jamf objects, for the report.
pub fn scope(config: &Jamf) -> Vec<String> {
    let groups = config
        .computer_groups
        .iter()
        .map(|g| format!("computer group `{}`", g.value));
    let category = config.category.iter().map(|c| format!("category `{}`", c.value));
    groups.chain(category).collect()
}

/// What a push would send, in order, from the build alone (a dry run without credentials); a profile
/// Jamf could not store as built is refused here too, so CI sees it before any push.
pub fn plan(build: &Build) -> Result<Vec<Object>> {
    for profile in &build.profiles {
        storable(profile)?;
    }
    let package = &build.package;
    let mut objects = vec![super::planned(
        "package",
        package.display_name.clone(),
        &package.identifier,
    )];
    objects.extend(
        build
            .profiles
            .iter()
            .map(|p| super::planned("profile", p.display_name.clone(), &p.identifier)),
    );
    objects.push(super::planned(
        "policy",
        format!("Install {}", package.display_name),
        &package.identifier,
    ));
    objects.extend(super::jamf_inventory::plan(build));
    Ok(objects)
}

/// Where confine's Jamf objects go: their category and the computer groups they are scoped to.
struct Scope<'a> {
    category: Option<&'a Named>,
    groups: &'a [Named],
}

/// The Jamf Pro privileges a call needs, from `x-required-privileges` in Jamf's API schema (11.30.1);
/// the Classic API declares none, so its names are those of Jamf's API role privilege list
/// (grahampugh/jamf-upload `APIRole-AutoPkg.json`; the policy and log-flush names are unverified).
pub fn privileges(method: &str, path: &str) -> &'static [&'static str] {
    let path = path.split('?').next().unwrap_or(path);
    let under = |prefix: &str| path.starts_with(prefix);
    match method {
        _ if path == "/api/v1/computer-groups" => {
            &["Read Smart Computer Groups", "Read Static Computer Groups"]
        }
        _ if under("/api/v1/categories") => &["Read Categories"],
        _ if under("/api/v1/cloud-distribution-point/refresh-inventory") => {
            &["Read Cloud Distribution Point"]
        }
        "GET" if under("/api/v1/computer-extension-attributes") => &["Read Computer Extension Attributes"],
        "POST" if under("/api/v1/computer-extension-attributes") => &["Create Computer Extension Attributes"],
        "PUT" if under("/api/v1/computer-extension-attributes") => &["Update Computer Extension Attributes"],
        "POST" if path.ends_with("/upload") => &["Update Packages", "Read Packages"],
        "GET" if under("/api/v1/packages") => &["Read Packages"],
        "POST" if under("/api/v1/packages") => &["Create Packages"],
        "PUT" if under("/api/v1/packages") => &["Update Packages"],
        "GET" if under("/JSSResource/osxconfigurationprofiles") => &["Read macOS Configuration Profiles"],
        "POST" if under("/JSSResource/osxconfigurationprofiles") => &["Create macOS Configuration Profiles"],
        "PUT" if under("/JSSResource/osxconfigurationprofiles") => &["Update macOS Configuration Profiles"],
        "GET" if under("/JSSResource/policies") => &["Read Policies"],
        "POST" if under("/JSSResource/policies") => &["Create Policies"],
        "PUT" if under("/JSSResource/policies") => &["Update Policies"],
        "DELETE" if under("/JSSResource/logflush") => &["Flush Policy Logs"],
        _ => &[],
    }
}

fn computer_groups(client: &Client, config: &Jamf) -> Result<Vec<Named>> {
    let all: Vec<Named> = client
        .expect("GET", "/api/v1/computer-groups", &Body::Empty, Retry::Idempotent)?
        .json()?;
    config
        .computer_groups
        .iter()
        .map(|wanted| {
            let missing = "Jamf Pro has no computer group";
            find_named(&all, |g| &g.name, &wanted.value, missing).cloned()
        })
        .collect()
}

fn category(client: &Client, wanted: &str) -> Result<Named> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(rename = "totalCount")]
        total: usize,
        results: Vec<Named>,
    }
    let mut all = Vec::new();
    let mut listing = Listing::default();
    for page in 0.. {
        let path = format!("/api/v1/categories?page={page}&page-size=200");
        let response = client.expect("GET", &path, &Body::Empty, Retry::Idempotent)?;
        let answer: Page = response.json()?;
        listing.page("/api/v1/categories", answer.results.len(), response.body.len())?;
        let done = answer.results.is_empty() || all.len() + answer.results.len() >= answer.total;
        all.extend(answer.results);
        if done {
            break;
        }
    }
    find_named(&all, |c| &c.name, wanted, "Jamf Pro has no category").cloned()
}

fn marker(identifier: &str) -> String {
    format!("confine-id: {identifier}")
}

fn managed_note(identifier: &str) -> String {
    format!(
        "Pushed by confine ({}). confine push replaces edits made here.",
        marker(identifier)
    )
}

/// The package record as Jamf Pro lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageRecord {
    id: String,
    package_name: String,
    file_name: String,
    category_id: String,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    info: Option<String>,
    #[serde(default)]
    hash_type: Option<String>,
    #[serde(default)]
    hash_value: Option<String>,
    #[serde(default)]
    md5: Option<String>,
    /// Computed by Jamf from the stored file when the distribution point's inventory is refreshed.
    #[serde(default)]
    sha3512: Option<String>,
}

impl PackageRecord {
    /// Jamf computed `sha3_512` from the file it holds (not merely the hash confine sent with the record).
    fn holds(&self, sha3_512: &str) -> bool {
        self.sha3512
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(sha3_512))
    }
}

/// Creates, updates or leaves the package record, and makes sure it holds the build's file.
fn package(
    client: &Client,
    build: &Build,
    category: Option<&Named>,
    options: &PushOptions,
) -> Result<Object> {
    let artifact = &build.package;
    let desired = serde_json::json!({
        "packageName": artifact.display_name,
        "fileName": artifact.file_name,
        "categoryId": category.map_or("-1", |c| c.id.as_str()),
        "info": format!("{} {} {}", build.organization, artifact.display_name, build.release),
        "notes": managed_note(&artifact.identifier),
        "priority": 10,
        "fillUserTemplate": false,
        "rebootRequired": false,
        "osInstall": false,
        "suppressUpdates": false,
        "suppressFromDock": false,
        "suppressEula": false,
        "suppressRegistration": false,
        "hashType": "SHA3_512",
        "hashValue": build.package_sha3_512,
        "md5": build.package_md5,
    });
    let found = find_package(client, &artifact.identifier)?;
    let metadata_current = found.as_ref().is_some_and(|r| {
        r.package_name == desired["packageName"]
            && r.file_name == desired["fileName"]
            && r.category_id == desired["categoryId"]
            && r.notes.as_deref() == desired["notes"].as_str()
            && r.info.as_deref() == desired["info"].as_str()
            && r.hash_type.as_deref() == Some("SHA3_512")
            && r.hash_value.as_deref() == Some(build.package_sha3_512.as_str())
            && r.md5.as_deref() == Some(build.package_md5.as_str())
    });
    let file_current = found.as_ref().is_some_and(|r| r.holds(&build.package_sha3_512));
    let action = match &found {
        None => Action::Create,
        Some(_) if metadata_current && file_current => Action::Unchanged,
        Some(_) => Action::Update,
    };
    let mut object = Object {
        kind: "package",
        name: artifact.display_name.clone(),
        identifier: artifact.identifier.clone(),
        id: found.as_ref().map(|r| r.id.clone()),
        action,
    };
    if options.dry_run || action == Action::Unchanged {
        return Ok(object);
    }
    let record = match found {
        Some(record) => {
            if !metadata_current {
                let path = format!("/api/v1/packages/{}", percent_encode(&record.id));
                client.expect("PUT", &path, &Body::Json(desired.clone()), Retry::Idempotent)?;
            }
            record
        }
        None => create_once(
            client,
            || find_package(client, &artifact.identifier),
            || {
                let outcome = client.send(
                    "POST",
                    "/api/v1/packages",
                    &Body::Json(desired.clone()),
                    Retry::Never,
                );
                let response = created(client, "POST", "/api/v1/packages", outcome)
                    .map_err(|e| duplicate_name_help(e, &artifact.display_name))?;
                let href: Href = response.json()?;
                find_package(client, &artifact.identifier)?
                    .filter(|r| r.id == href.id)
                    .context("Jamf Pro created the package record but does not list it")
            },
        )?,
    };
    object.id = Some(record.id.clone());
    if !record.holds(&build.package_sha3_512) {
        upload(client, &record, build, options)?;
    }
    Ok(object)
}

#[derive(Deserialize)]
struct Href {
    id: String,
}

fn duplicate_name_help(e: anyhow::Error, name: &str) -> anyhow::Error {
    if format!("{e:#}").contains("DUPLICATE_FIELD") {
        e.context(format!(
            "Jamf Pro already has a package named `{name}` that confine did not push; rename or delete it, or change `fleet.name`"
        ))
    } else {
        e
    }
}

/// Every package record carrying `identifier` in its notes; more than one is an error to resolve by hand.
fn find_package(client: &Client, identifier: &str) -> Result<Option<PackageRecord>> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(rename = "totalCount")]
        total: usize,
        results: Vec<PackageRecord>,
    }
    let marker = marker(identifier);
    let mut seen = 0;
    let mut matches = Vec::new();
    let mut listing = Listing::default();
    for page in 0.. {
        let path = format!("/api/v1/packages?page={page}&page-size=200&sort=id%3Aasc");
        let response = client.expect("GET", &path, &Body::Empty, Retry::Idempotent)?;
        let answer: Page = response.json()?;
        listing.page("/api/v1/packages", answer.results.len(), response.body.len())?;
        seen += answer.results.len();
        let done = answer.results.is_empty() || seen >= answer.total;
        matches.extend(answer.results.into_iter().filter(|r| {
            r.notes
                .as_deref()
                .is_some_and(|n| n.contains(&format!("({marker})")))
        }));
        if done {
            break;
        }
    }
    if matches.len() > 1 {
        let ids: Vec<&str> = matches.iter().map(|r| r.id.as_str()).collect();
        bail!(
            "Jamf Pro has {} package records marked `{marker}` (ids {}); delete all but one",
            matches.len(),
            ids.join(", ")
        );
    }
    Ok(matches.pop())
}

/// Uploads the file onto the record, streamed, then reads the record back until Jamf Pro reports the
/// file's SHA3-512.
fn upload(client: &Client, record: &PackageRecord, build: &Build, options: &PushOptions) -> Result<()> {
    let artifact = &build.package;
    // The multipart file name must equal the record's fileName, or Jamf answers INVALID_FILE_NAME.
    let mut form = Multipart::new(
        &[],
        Some(("file", &artifact.file_name, artifact.source())),
        &artifact.sha256[..32],
    )?;
    if let Some(progress) = super::progress_for(options, &artifact.file_name, form.len()) {
        form = form.with_progress(progress);
    }
    let path = format!("/api/v1/packages/{}/upload", percent_encode(&record.id));
    client.expect("POST", &path, &Body::Multipart(&form), Retry::Idempotent)?;
    // Jamf computes the hashes of a file only when the distribution point's inventory is refreshed.
    let refresh = format!(
        "/api/v1/cloud-distribution-point/refresh-inventory?file-name={}",
        percent_encode(&artifact.file_name)
    );
    client.expect("POST", &refresh, &Body::Empty, Retry::Idempotent)?;
    let record_path = format!("/api/v1/packages/{}", percent_encode(&record.id));
    for attempt in 1..=HASH_POLLS {
        let now: PackageRecord = client
            .expect("GET", &record_path, &Body::Empty, Retry::Idempotent)?
            .json()?;
        if now.holds(&build.package_sha3_512) {
            return Ok(());
        }
        let stale = now.sha3512.as_deref().unwrap_or_default();
        let previous = record.sha3512.as_deref().unwrap_or_default();
        if !stale.is_empty() && stale != previous {
            bail!(
                "Jamf Pro holds a different file for package {} than confine uploaded (SHA3-512 {stale}, expected {}); push again",
                record.id,
                build.package_sha3_512
            );
        }
        std::thread::sleep(
            client
                .settings()
                .retry_delay
                .min(std::time::Duration::from_secs(10))
                * attempt.min(5),
        );
    }
    bail!(
        "Jamf Pro did not confirm the upload of {} (no matching SHA3-512 after {HASH_POLLS} reads); push again later",
        artifact.file_name
    )
}

/// What confine compares in a Classic object it owns.
#[derive(Debug, PartialEq, Eq)]
struct ClassicState {
    name: String,
    category: String,
    groups: Vec<String>,
}

fn classic_state(root: &Element) -> ClassicState {
    let general = root.child("general");
    let text = |parent: Option<&Element>, name: &str| {
        parent
            .and_then(|p| p.child_text(name))
            .unwrap_or_default()
            .to_owned()
    };
    let category = text(general.and_then(|g| g.child("category")), "name");
    let mut groups: Vec<String> = root
        .child("scope")
        .and_then(|s| s.child("computer_groups"))
        .map(|g| {
            g.children_named("computer_group")
                .map(|group| group.child_text("name").unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    groups.sort();
    ClassicState {
        name: text(general, "name"),
        category: match category.as_str() {
            "No category assigned" => String::new(),
            _ => category,
        },
        groups,
    }
}

fn desired_state(name: &str, category: Option<&Named>, groups: &[Named]) -> ClassicState {
    let mut groups: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    groups.sort();
    ClassicState {
        name: name.to_owned(),
        category: category.map(|c| c.name.clone()).unwrap_or_default(),
        groups,
    }
}

/// Reads a Classic object by name: `None` when there is none.
fn classic_by_name(client: &Client, resource: &str, name: &str) -> Result<Option<(String, Element)>> {
    let path = format!("/JSSResource/{resource}/name/{}", percent_encode(name));
    let response = client.send("GET", &path, &Body::Empty, Retry::Idempotent)?;
    if response.status == 404 {
        return Ok(None);
    }
    if !response.is_success() {
        bail!("{}", client.describe_failure("GET", &path, &response));
    }
    let root = parse_xml(&response.body, &format!("Jamf's answer to GET {path}"))?;
    let id = root
        .child("general")
        .and_then(|g| g.child_text("id"))
        .context("Jamf's Classic record has no id")?
        .to_owned();
    Ok(Some((id, root)))
}

/// Creates (`id` None) or replaces a Classic object; returns its id.
fn classic_write(
    client: &Client,
    resource: &str,
    id: Option<&str>,
    name: &str,
    xml: String,
) -> Result<String> {
    match id {
        Some(id) => {
            let path = format!("/JSSResource/{resource}/id/{}", percent_encode(id));
            client.expect("PUT", &path, &Body::Xml(xml), Retry::Idempotent)?;
            Ok(id.to_owned())
        }
        None => create_once(
            client,
            || Ok(classic_by_name(client, resource, name)?.map(|(id, _)| id)),
            || {
                let path = format!("/JSSResource/{resource}/id/0");
                let outcome = client.send("POST", &path, &Body::Xml(xml.clone()), Retry::Never);
                let response = created(client, "POST", &path, outcome)?;
                let root = parse_xml(&response.body, "Jamf's answer to a Classic create")?;
                Ok(root
                    .child_text("id")
                    .context("Jamf's answer has no id")?
                    .to_owned())
            },
        ),
    }
}

/// Refuses a Classic object that has the name confine wants but not its identifier: confine never takes
/// over what someone else made.
fn ensure_ours(root: &Element, field: &str, is_ours: impl Fn(&str) -> bool, what: &str) -> Result<()> {
    let general = root.child("general");
    let value = general.and_then(|g| g.child_text(field)).unwrap_or_default();
    if !is_ours(value) {
        bail!(
            "Jamf Pro already has a {what} named `{}` that confine did not push (its {field} does not carry confine's identifier); rename or delete it",
            general.and_then(|g| g.child_text("name")).unwrap_or_default()
        );
    }
    Ok(())
}

fn profile(
    client: &Client,
    config: &Jamf,
    artifact: &super::Artifact,
    scope: &Scope<'_>,
    options: &PushOptions,
) -> Result<Object> {
    let (category, groups) = (scope.category, scope.groups);
    let redeploy = config.redeploy_profiles.jamf_value();
    let payload = artifact.bytes().to_vec();
    let name = &artifact.display_name;
    let found = classic_by_name(client, "osxconfigurationprofiles", name)?;
    let action = match &found {
        None => Action::Create,
        Some((_, root)) => {
            let marker = format!("({})", marker(&artifact.identifier));
            ensure_ours(
                root,
                "description",
                |d| d.contains(&marker),
                "configuration profile",
            )?;
            let held = held_payloads(root).unwrap_or_default();
            let general = |key: &str| root.child("general").and_then(|g| g.child_text(key));
            let current = classic_state(root) == desired_state(name, category, groups)
                && general("distribution_method") == Some("Install Automatically")
                && general("redeploy_on_update").is_none_or(|r| r == redeploy)
                && normalize::same_profile(&payload, held.as_bytes());
            if current {
                Action::Unchanged
            } else {
                Action::Update
            }
        }
    };
    let mut object = Object {
        kind: "profile",
        name: name.clone(),
        identifier: artifact.identifier.clone(),
        id: found.as_ref().map(|(id, _)| id.clone()),
        action,
    };
    if options.dry_run || action == Action::Unchanged {
        return Ok(object);
    }
    // An update keeps the identity Jamf gave the profile, or Macs would see a second profile beside the
    // first (a "ghost profile").
    let payload = match found.as_ref().and_then(|(_, root)| held_payloads(root)) {
        Some(held) => normalize::with_identity_of(&payload, held.as_bytes())?,
        None => payload,
    };
    let text = std::str::from_utf8(&payload).context("the profile is not UTF-8 XML")?;
    let xml = format!(
        "<os_x_configuration_profile><general><name>{}</name><description>{}</description>{}<distribution_method>Install Automatically</distribution_method><user_removable>false</user_removable><level>computer</level><redeploy_on_update>{redeploy}</redeploy_on_update><payloads>{}</payloads></general>{}</os_x_configuration_profile>",
        xml_escape(name),
        xml_escape(&managed_note(&artifact.identifier)),
        category_xml(category),
        classic_payload(text),
        scope_xml(groups),
    );
    let id = found.map(|(id, _)| id);
    let id = classic_write(client, "osxconfigurationprofiles", id.as_deref(), name, xml)?;
    read_back(client, &id, name, &payload)?;
    object.id = Some(id);
    Ok(object)
}

/// Reads a written profile back: what Jamf stored must be what was sent, once its own rewrites are
/// normalised away.
fn read_back(client: &Client, id: &str, name: &str, sent: &[u8]) -> Result<()> {
    let path = format!("/JSSResource/osxconfigurationprofiles/id/{}", percent_encode(id));
    let response = client.expect("GET", &path, &Body::Empty, Retry::Idempotent)?;
    let root = parse_xml(&response.body, &format!("Jamf's answer to GET {path}"))?;
    let held = held_payloads(&root).unwrap_or_default();
    if let Some(key) = normalize::difference(sent, held.as_bytes()) {
        bail!(
            "Jamf Pro stored profile `{name}` (id {id}) differently than confine sent it, at `{key}`; report it with the profile, and check the value in Jamf Pro before Macs get it"
        );
    }
    Ok(())
}

/// Payload types whose values Jamf Pro re-renders on ingest, so they are stored as sent; every other
/// type is stored verbatim, one entity layer short (PI-827; jamf-cli PR #310, wire-verified).
const RE_RENDERED_PAYLOAD_TYPES: &[&str] = &[
    "com.apple.ManagedClient.preferences",
    "com.apple.notificationsettings",
];

/// Refuses a profile with `&` or `<` in a payload Jamf Pro stores verbatim: Macs would receive the
/// character as an entity (`&amp;`), and no wire form avoids it.
fn storable(artifact: &super::Artifact) -> Result<()> {
    let profile = crate::profile::reader::parse_plist(artifact.bytes())?;
    let payloads = profile
        .as_dictionary()
        .and_then(|d| d.get("PayloadContent"))
        .and_then(plist::Value::as_array);
    for (i, payload) in payloads.into_iter().flatten().enumerate() {
        let kind = payload
            .as_dictionary()
            .and_then(|d| d.get("PayloadType"))
            .and_then(plist::Value::as_string)
            .unwrap_or_default();
        if RE_RENDERED_PAYLOAD_TYPES.contains(&kind) {
            continue;
        }
        if let Some(key) = unstorable_text(payload, &format!("PayloadContent[{i}]")) {
            bail!(
                "{}: `{key}` holds `&` or `<`, which Jamf Pro would store in this {kind} payload as an entity (Jamf's PI-827), so Macs would get a different value; remove the character from the spec value it comes from",
                artifact.path.display()
            );
        }
    }
    Ok(())
}

fn unstorable_text(value: &plist::Value, at: &str) -> Option<String> {
    let bad = |text: &str| text.contains(['&', '<']);
    match value {
        plist::Value::String(text) if bad(text) => Some(at.to_owned()),
        plist::Value::Dictionary(dict) => dict.iter().find_map(|(key, value)| {
            let path = format!("{at}.{key}");
            if bad(key) {
                Some(path)
            } else {
                unstorable_text(value, &path)
            }
        }),
        plist::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| unstorable_text(v, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// The profile Jamf holds, as its Classic record carries it.
fn held_payloads(root: &Element) -> Option<&str> {
    root.child("general").and_then(|g| g.child_text("payloads"))
}

/// A plist as Classic `<payloads>` content: avoidable references written as characters, a `]]>` that
/// produces guarded, every `&` escaped once (Classic decodes once more than XML does), inside CDATA.
fn classic_payload(plist: &str) -> String {
    let minimal = minimise_references(plist.trim()).replace("]]>", "]]&gt;");
    format!("<![CDATA[{}]]>", minimal.replace('&', "&amp;"))
}

/// XML text with every character reference written as its character, except those for `&` and `<`
/// (which must stay references) and for control characters such as a carriage return (which XML would
/// not keep raw).
fn minimise_references(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let decoded = tail
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| Some((reference(&tail[1..end])?, end)));
        match decoded {
            Some((c, end)) if written_as_character(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether a referenced character may go as itself: not `&` or `<`, nor a control character XML would
/// not keep raw (a tab or a line feed it keeps).
fn written_as_character(c: char) -> bool {
    let kept_raw = !c.is_control() || c == '\t' || c == '\n';
    kept_raw && c != '&' && c != '<'
}

/// The character an XML reference (`amp`, `#34`, `#x22`…, without `&` and `;`) stands for.
fn reference(name: &str) -> Option<char> {
    let code = match name {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        _ => match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => name.strip_prefix('#')?.parse().ok()?,
        },
    };
    char::from_u32(code)
}

fn category_xml(category: Option<&Named>) -> String {
    category.map_or_else(String::new, |c| {
        format!(
            "<category><id>{}</id><name>{}</name></category>",
            xml_escape(&c.id),
            xml_escape(&c.name)
        )
    })
}

fn scope_xml(groups: &[Named]) -> String {
    let groups: String = groups
        .iter()
        .map(|g| {
            format!(
                "<computer_group><id>{}</id><name>{}</name></computer_group>",
                xml_escape(&g.id),
                xml_escape(&g.name)
            )
        })
        .collect();
    format!("<scope><all_computers>false</all_computers><computer_groups>{groups}</computer_groups></scope>")
}

/// The policy's Self Service description (unused: the policy is not in Self Service), which records the
/// file it last made every Mac install.
fn installs_note(build: &Build) -> String {
    format!(
        "Installs {} {} (package SHA-256 {}). {}",
        build.package.display_name,
        build.release,
        build.package.sha256,
        managed_note(&build.package.identifier)
    )
}

fn policy(
    client: &Client,
    build: &Build,
    package_id: Option<&str>,
    scope: &Scope<'_>,
    options: &PushOptions,
) -> Result<Object> {
    let (category, groups) = (scope.category, scope.groups);
    let artifact = &build.package;
    let name = format!("Install {}", artifact.display_name);
    let trigger = &artifact.identifier;
    let note = installs_note(build);
    let found = classic_by_name(client, "policies", &name)?;
    if let Some((_, root)) = &found {
        ensure_ours(root, "trigger_other", |t| t == trigger, "policy")?;
    }
    // Derived from the server, so a push that stopped after the upload still flushes on its rerun.
    let installs_this_file = found.as_ref().is_some_and(|(_, root)| {
        root.child("self_service")
            .and_then(|s| s.child_text("self_service_description"))
            == Some(note.as_str())
    });
    let action = match (&found, package_id) {
        (None, _) => Action::Create,
        (Some((_, root)), Some(package_id)) => {
            let general = root.child("general");
            let flag = |key: &str| general.and_then(|g| g.child_text(key));
            // Jamf answers a policy's packages with their display names, not file names: the id is what
            // confine compares.
            let packages: Vec<&str> = root
                .child("package_configuration")
                .and_then(|p| p.child("packages"))
                .map(|p| {
                    p.children_named("package")
                        .map(|p| p.child_text("id").unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            let recon = root.child("maintenance").and_then(|m| m.child_text("recon"));
            let current = classic_state(root) == desired_state(&name, category, groups)
                && flag("enabled") == Some("true")
                && flag("frequency") == Some("Once per computer")
                && flag("trigger_checkin") == Some("true")
                && flag("trigger_enrollment_complete") == Some("true")
                && packages == [package_id]
                && recon == Some("true")
                && installs_this_file;
            if current {
                Action::Unchanged
            } else {
                Action::Update
            }
        }
        // A dry run that would create the package would also point the policy at it.
        (Some(_), None) => Action::Update,
    };
    let mut object = Object {
        kind: "policy",
        name: name.clone(),
        identifier: trigger.clone(),
        id: found.as_ref().map(|(id, _)| id.clone()),
        action,
    };
    if options.dry_run || action == Action::Unchanged {
        return Ok(object);
    }
    let package_id = package_id.context("the package has no Jamf id")?;
    let existing = found.map(|(id, _)| id);
    if let Some(id) = existing.as_deref().filter(|_| !installs_this_file) {
        // "Once per computer" remembers who ran it; forgetting makes every Mac install the new file.
        // Flushed before the policy records the file, so an interruption between the two flushes again.
        let path = format!(
            "/JSSResource/logflush/policy/id/{}/interval/Zero+Days",
            percent_encode(id)
        );
        client.expect("DELETE", &path, &Body::Empty, Retry::Idempotent)?;
    }
    let xml = format!(
        "<policy><general><name>{}</name><enabled>true</enabled><trigger_checkin>true</trigger_checkin><trigger_enrollment_complete>true</trigger_enrollment_complete><trigger_other>{}</trigger_other><frequency>Once per computer</frequency>{}</general>{}<self_service><use_for_self_service>false</use_for_self_service><self_service_description>{}</self_service_description></self_service><package_configuration><packages><package><id>{}</id><action>Install</action></package></packages></package_configuration><maintenance><recon>true</recon></maintenance></policy>",
        xml_escape(&name),
        xml_escape(trigger),
        category_xml(category),
        scope_xml(groups),
        xml_escape(&note),
        xml_escape(package_id),
    );
    object.id = Some(classic_write(
        client,
        "policies",
        existing.as_deref(),
        &name,
        xml,
    )?);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_survive_the_extra_decode() {
        let plist = "<string>a &amp; b ]]> c &lt;</string>";
        assert_eq!(
            classic_payload(plist),
            "<![CDATA[<string>a &amp;amp; b ]]&amp;gt; c &amp;lt;</string>]]>"
        );
    }

    /// PI-827's verbatim storage keeps the wire form: references a value does not need go as characters.
    #[test]
    fn avoidable_references_go_as_characters() {
        let plist = "<string>identifier &quot;node&quot; and the agents&apos; &#34;x&#x22; &gt; &#13; &#38; &lt; &bogus; &</string>";
        assert_eq!(
            minimise_references(plist),
            "<string>identifier \"node\" and the agents' \"x\" > &#13; &#38; &lt; &bogus; &</string>"
        );
    }
}
