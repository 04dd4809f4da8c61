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
//! instead of installing a second one. Classic `<payloads>` are sent as CDATA with every `&` escaped once more: the Classic API decodes the
//! payload one extra time (Jamf's PI-827), so a plain `&amp;` would arrive as `&`.

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
    let (package, file_replaced) = package(client, build, category.as_ref(), options)?;
    let package_id = package.id.clone();
    objects.push(package);
    for profile in &build.profiles {
        objects.push(self::profile(
            client,
            profile,
            category.as_ref(),
            &groups,
            options,
        )?);
    }
    let installs = Installs {
        package_id: package_id.as_deref(),
        file_replaced,
    };
    objects.push(policy(
        client,
        build,
        &installs,
        category.as_ref(),
        &groups,
        options,
    )?);
    Ok(())
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
}

impl PackageRecord {
    fn holds(&self, sha3_512: &str) -> bool {
        self.hash_type.as_deref() == Some("SHA3_512")
            && self
                .hash_value
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(sha3_512))
    }
}

/// Creates, updates or leaves the package record; also says whether the file was (or, in a dry run, would
/// be) replaced on an existing record.
fn package(
    client: &Client,
    build: &Build,
    category: Option<&Named>,
    options: &PushOptions,
) -> Result<(Object, bool)> {
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
    });
    let found = find_package(client, &artifact.identifier)?;
    let metadata_current = found.as_ref().is_some_and(|r| {
        r.package_name == desired["packageName"]
            && r.file_name == desired["fileName"]
            && r.category_id == desired["categoryId"]
            && r.notes.as_deref() == desired["notes"].as_str()
            && r.info.as_deref() == desired["info"].as_str()
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
    let file_replaced = found.is_some() && !file_current;
    if options.dry_run || action == Action::Unchanged {
        return Ok((object, file_replaced));
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
    Ok((object, file_replaced))
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
    let record_path = format!("/api/v1/packages/{}", percent_encode(&record.id));
    for attempt in 1..=HASH_POLLS {
        let now: PackageRecord = client
            .expect("GET", &record_path, &Body::Empty, Retry::Idempotent)?
            .json()?;
        if now.holds(&build.package_sha3_512) {
            return Ok(());
        }
        let stale = now.hash_value.as_deref().unwrap_or_default();
        let previous = record.hash_value.as_deref().unwrap_or_default();
        if now.hash_type.as_deref() == Some("SHA3_512") && !stale.is_empty() && stale != previous {
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
    artifact: &super::Artifact,
    category: Option<&Named>,
    groups: &[Named],
    options: &PushOptions,
) -> Result<Object> {
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
            let current = classic_state(root) == desired_state(name, category, groups)
                && root
                    .child("general")
                    .and_then(|g| g.child_text("distribution_method"))
                    == Some("Install Automatically")
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
    let payload = String::from_utf8(payload).context("the profile is not UTF-8 XML")?;
    let xml = format!(
        "<os_x_configuration_profile><general><name>{}</name><description>{}</description>{}<distribution_method>Install Automatically</distribution_method><user_removable>false</user_removable><level>computer</level><redeploy_on_update>Newly Assigned</redeploy_on_update><payloads>{}</payloads></general>{}</os_x_configuration_profile>",
        xml_escape(name),
        xml_escape(&managed_note(&artifact.identifier)),
        category_xml(category),
        classic_payload(&payload),
        scope_xml(groups),
    );
    let id = found.map(|(id, _)| id);
    object.id = Some(classic_write(
        client,
        "osxconfigurationprofiles",
        id.as_deref(),
        name,
        xml,
    )?);
    Ok(object)
}

/// The profile Jamf holds, as its Classic record carries it.
fn held_payloads(root: &Element) -> Option<&str> {
    root.child("general").and_then(|g| g.child_text("payloads"))
}

/// A plist as Classic `<payloads>` content: every `&` escaped once (Classic decodes once more than XML
/// does), inside CDATA (split where the text itself holds `]]>`).
fn classic_payload(plist: &str) -> String {
    let escaped = plist.trim().replace('&', "&amp;");
    format!("<![CDATA[{}]]>", escaped.replace("]]>", "]]]]><![CDATA[>"))
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

/// What the policy installs.
struct Installs<'a> {
    /// The package record's id; none when a dry run would create it.
    package_id: Option<&'a str>,
    /// The record got a new file: Macs that ran the policy must run it again.
    file_replaced: bool,
}

fn policy(
    client: &Client,
    build: &Build,
    installs: &Installs<'_>,
    category: Option<&Named>,
    groups: &[Named],
    options: &PushOptions,
) -> Result<Object> {
    let artifact = &build.package;
    let name = format!("Install {}", artifact.display_name);
    let trigger = &artifact.identifier;
    let found = classic_by_name(client, "policies", &name)?;
    if let Some((_, root)) = &found {
        ensure_ours(root, "trigger_other", |t| t == trigger, "policy")?;
    }
    let action = match (&found, installs.package_id) {
        (None, _) => Action::Create,
        (Some((_, root)), Some(package_id)) => {
            let general = root.child("general");
            let flag = |key: &str| general.and_then(|g| g.child_text(key));
            let packages: Vec<(&str, &str)> = root
                .child("package_configuration")
                .and_then(|p| p.child("packages"))
                .map(|p| {
                    p.children_named("package")
                        .map(|p| {
                            let field = |key| p.child_text(key).unwrap_or_default();
                            (field("id"), field("name"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let current = classic_state(root) == desired_state(&name, category, groups)
                && flag("enabled") == Some("true")
                && flag("frequency") == Some("Once per computer")
                && flag("trigger_checkin") == Some("true")
                && flag("trigger_enrollment_complete") == Some("true")
                && packages == [(package_id, artifact.file_name.as_str())]
                && !installs.file_replaced;
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
    let package_id = installs.package_id.context("the package has no Jamf id")?;
    let xml = format!(
        "<policy><general><name>{}</name><enabled>true</enabled><trigger_checkin>true</trigger_checkin><trigger_enrollment_complete>true</trigger_enrollment_complete><trigger_other>{}</trigger_other><frequency>Once per computer</frequency>{}</general>{}<package_configuration><packages><package><id>{}</id><name>{}</name><action>Install</action></package></packages></package_configuration></policy>",
        xml_escape(&name),
        xml_escape(trigger),
        category_xml(category),
        scope_xml(groups),
        xml_escape(package_id),
        xml_escape(&artifact.file_name),
    );
    let existing = found.map(|(id, _)| id);
    let id = classic_write(client, "policies", existing.as_deref(), &name, xml)?;
    if existing.is_some() && installs.file_replaced {
        // "Once per computer" remembers who ran it; forgetting makes every Mac install the new release.
        let path = format!(
            "/JSSResource/logflush/policy/id/{}/interval/Zero+Days",
            percent_encode(&id)
        );
        client.expect("DELETE", &path, &Body::Empty, Retry::Idempotent)?;
    }
    object.id = Some(id);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_survive_the_extra_decode() {
        let plist = "<string>a &amp; b ]]> c</string>";
        let sent = classic_payload(plist);
        assert_eq!(
            sent,
            "<![CDATA[<string>a &amp;amp; b ]]]]><![CDATA[> c</string>]]>"
        );
    }
}
