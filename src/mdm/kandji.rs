//! Kandji (Iru): the package as a Custom App (presigned S3 form upload, then the library item,
//! form-urlencoded as Kandji's collection specifies), the profiles as Custom Profiles, and every library
//! item assigned to the spec's blueprints.
//!
//! Identifiers: the package is uploaded as `<package identifier>-<first 16 hex of its SHA-256>.pkg`, and
//! Kandji derives the app's `file_key` from that name, so the app is found by its identifier and its file
//! compared by hash without downloading it. Kandji rewrites a custom profile's top-level
//! `PayloadIdentifier`, `PayloadUUID` and `PayloadDisplayName` (to `com.kandji.profile.custom.<id>`, as
//! Kandji's own iructl test doubles model), so profiles are found by what it keeps: the identifiers of
//! the payloads inside, which confine derives from the profile's identifier.
//!
//! New releases: "install once" installs a custom app once per Mac and never again, whatever file it
//! later holds. By default (`enforcement: audit-and-enforce`, as Kandji's kpkg does) the app is
//! continuously enforced with an audit script that passes when the installed receipt is at least this
//! release, so Kandji installs a new release on Macs that hold an older one.
//!
//! Uploads: a failed S3 upload is retried with a new presigned form (the old one may have expired), and
//! any 503 from Kandji while it processes the upload is waited out.

use anyhow::{Result, bail};
use serde::Deserialize;

use super::http::{Auth, Body, Client, Retry, percent_encode};
use super::multipart::Multipart;
use super::normalize;
use super::{Action, Artifact, Build, Listing, Object, PushOptions, create_once, created, find_named};
use crate::spec::mdm::{Enforcement, Kandji};

pub fn credentials(config: &Kandji) -> Result<Auth> {
    Ok(Auth::Bearer(super::env_secret(
        &config.token_env.value,
        "Kandji API token",
    )?))
}

#[derive(Debug, Clone, Deserialize)]
struct Named {
    id: String,
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct CustomApp {
    id: String,
    name: String,
    file_key: String,
    install_enforcement: String,
    #[serde(default)]
    audit_script: Option<String>,
    active: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct CustomProfile {
    id: String,
    name: String,
    profile: String,
    active: bool,
    runs_on_mac: bool,
}

pub fn push(
    client: &Client,
    config: &Kandji,
    build: &Build,
    options: &PushOptions,
    objects: &mut Vec<Object>,
) -> Result<()> {
    let blueprints = blueprints(client, config)?;
    let mut items = vec![custom_app(client, config, build, options)?];
    objects.push(items[0].clone());
    let existing: Vec<CustomProfile> = list(client, CUSTOM_PROFILES)?;
    for artifact in &build.profiles {
        let profile = custom_profile(client, artifact, &existing, options)?;
        objects.push(profile.clone());
        items.push(profile);
    }
    for blueprint in &blueprints {
        let path = format!(
            "/api/v1/blueprints/{}/list-library-items",
            percent_encode(&blueprint.id)
        );
        let assigned: Vec<Named> = list(client, &path)?;
        for item in &items {
            let present = item
                .id
                .as_ref()
                .is_some_and(|id| assigned.iter().any(|a| &a.id == id));
            let object = Object {
                kind: "blueprint-assignment",
                name: format!("{} → {}", item.name, blueprint.name),
                identifier: item.identifier.clone(),
                id: item.id.clone(),
                action: if present {
                    Action::Unchanged
                } else {
                    Action::Create
                },
            };
            if !present && !options.dry_run {
                assign(client, blueprint, item.id.as_deref().unwrap_or_default())?;
            }
            objects.push(object);
        }
    }
    Ok(())
}

/// The scope the spec gives Kandji library items, for the report.
pub fn scope(config: &Kandji) -> Vec<String> {
    config
        .blueprints
        .iter()
        .map(|b| format!("blueprint `{}`", b.value))
        .collect()
}

/// What a push would send, in order, from the build alone (a dry run without credentials).
pub fn plan(config: &Kandji, build: &Build) -> Vec<Object> {
    let package = &build.package;
    let app = format!("{} ({})", package.display_name, build.organization);
    let mut items = vec![super::planned("custom-app", app, &package.identifier)];
    items.extend(
        build
            .profiles
            .iter()
            .map(|p| super::planned("custom-profile", p.display_name.clone(), &p.identifier)),
    );
    let assignments: Vec<Object> = config
        .blueprints
        .iter()
        .flat_map(|blueprint| {
            items.iter().map(move |item| {
                let name = format!("{} → {}", item.name, blueprint.value);
                super::planned("blueprint-assignment", name, &item.identifier)
            })
        })
        .collect();
    items.extend(assignments);
    items
}

fn assign(client: &Client, blueprint: &Named, item_id: &str) -> Result<()> {
    let path = format!(
        "/api/v1/blueprints/{}/assign-library-item",
        percent_encode(&blueprint.id)
    );
    let body = Body::Json(serde_json::json!({ "library_item_id": item_id }));
    let response = client.send("POST", &path, &body, Retry::Idempotent)?;
    // Kandji answers 400 "Library Item already exists on Blueprint" to a repeat: that is success.
    if response.is_success() || (response.status == 400 && response.text().contains("already exists")) {
        return Ok(());
    }
    bail!("{}", client.describe_failure("POST", &path, &response))
}

fn blueprints(client: &Client, config: &Kandji) -> Result<Vec<Named>> {
    let all: Vec<Named> = list(client, "/api/v1/blueprints")?;
    config
        .blueprints
        .iter()
        .map(|wanted| find_named(&all, |b| &b.name, &wanted.value, "Kandji has no blueprint").cloned())
        .collect()
}

/// Every result of a Kandji list, following `next` (only ever on the tenant's own host).
fn list<T: serde::de::DeserializeOwned>(client: &Client, first: &str) -> Result<Vec<T>> {
    #[derive(Deserialize)]
    struct Page<T> {
        next: Option<String>,
        results: Vec<T>,
    }
    let mut all = Vec::new();
    let mut path = first.to_owned();
    let mut listing = Listing::default();
    loop {
        let response = client.expect("GET", &path, &Body::Empty, Retry::Idempotent)?;
        let page: Page<T> = response.json()?;
        listing.page(first, page.results.len(), response.body.len())?;
        all.extend(page.results);
        match page.next {
            Some(next) if !next.is_empty() => path = path_and_query(&next)?,
            _ => return Ok(all),
        }
    }
}

/// `/path?query` of a `next` link, so the token is only ever sent to the configured tenant.
fn path_and_query(url: &str) -> Result<String> {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        bail!("Kandji's next-page link `{url}` has no path");
    }
    Ok(format!("/{rest}"))
}

/// The name the package is uploaded under, and what Kandji's `file_key` then contains.
fn upload_name(build: &Build) -> String {
    format!("{}-{}.pkg", build.package.identifier, &build.package.sha256[..16])
}

/// Whether a `file_key` belongs to `identifier`'s package; `Some(hash prefix)` if it does.
fn file_key_hash<'a>(file_key: &'a str, identifier: &str) -> Option<&'a str> {
    let file = file_key.rsplit('/').next()?;
    let rest = file.strip_prefix(identifier)?.strip_prefix('-')?;
    let hash = rest.get(..16)?;
    let after = rest[16..].chars().next()?;
    (hash.chars().all(|c| c.is_ascii_hexdigit()) && (after == '_' || after == '.')).then_some(hash)
}

/// The fields that say how Kandji keeps the app installed.
fn enforcement_fields(config: &Kandji, build: &Build) -> Vec<(&'static str, String)> {
    match config.enforcement {
        Enforcement::InstallOnce => vec![("install_enforcement", "install_once".to_owned())],
        Enforcement::AuditAndEnforce => vec![
            ("install_enforcement", "continuously_enforce".to_owned()),
            (
                "audit_script",
                audit_script(&build.package.identifier, &build.release),
            ),
        ],
    }
}

/// Kandji's audit: exit 0 when the Mac's receipt for `identifier` is at least `release` (compared field
/// by field as numbers), else 1, and Kandji installs the package.
fn audit_script(identifier: &str, release: &str) -> String {
    format!(
        r#"#!/bin/sh
# confine: the agent's package is installed when its receipt is at least this release.
installed=$(pkgutil --pkg-info {} 2>/dev/null | awk '/^version: / {{ print $2 }}')
[ -n "$installed" ] || exit 1
awk -v have="$installed" -v want={} 'BEGIN {{
  n = split(have, h, /[.-]/); m = split(want, w, /[.-]/)
  for (i = 1; i <= (n > m ? n : m); i++) {{
    if (h[i] + 0 > w[i] + 0) exit 0
    if (h[i] + 0 < w[i] + 0) exit 1
  }}
  exit 0
}}'
"#,
        sh_quote(identifier),
        sh_quote(release)
    )
}

/// A word for POSIX sh: single-quoted, each `'` written as `'\''`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn custom_app(client: &Client, config: &Kandji, build: &Build, options: &PushOptions) -> Result<Object> {
    let artifact = &build.package;
    let enforcement = enforcement_fields(config, build);
    let field = |name: &str| {
        enforcement
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    let name = format!("{} ({})", artifact.display_name, build.organization);
    let find = || -> Result<Option<CustomApp>> {
        let apps: Vec<CustomApp> = list(client, "/api/v1/library/custom-apps")?;
        let mut mine: Vec<CustomApp> = apps
            .into_iter()
            .filter(|a| file_key_hash(&a.file_key, &artifact.identifier).is_some())
            .collect();
        if mine.len() > 1 {
            let ids: Vec<&str> = mine.iter().map(|a| a.id.as_str()).collect();
            bail!(
                "Kandji has {} custom apps for {} (ids {}); delete all but one",
                mine.len(),
                artifact.identifier,
                ids.join(", ")
            );
        }
        Ok(mine.pop())
    };
    let found = find()?;
    let file_current = found
        .as_ref()
        .is_some_and(|a| file_key_hash(&a.file_key, &artifact.identifier) == Some(&artifact.sha256[..16]));
    let metadata_current = found.as_ref().is_some_and(|a| {
        a.name == name
            && Some(a.install_enforcement.as_str()) == field("install_enforcement")
            && a.audit_script.as_deref().filter(|s| !s.is_empty()) == field("audit_script")
            && a.active
    });
    let action = match &found {
        None => Action::Create,
        Some(_) if file_current && metadata_current => Action::Unchanged,
        Some(_) => Action::Update,
    };
    let mut object = Object {
        kind: "custom-app",
        name: name.clone(),
        identifier: artifact.identifier.clone(),
        id: found.as_ref().map(|a| a.id.clone()),
        action,
    };
    if options.dry_run || action == Action::Unchanged {
        return Ok(object);
    }
    let file_key = if file_current {
        None
    } else {
        Some(upload(client, build, options)?)
    };
    let mut fields = vec![("name", name.clone()), ("install_type", "package".to_owned())];
    fields.extend(enforcement.iter().cloned());
    fields.extend([
        ("show_in_self_service", "false".to_owned()),
        ("active", "true".to_owned()),
        ("restart", "false".to_owned()),
    ]);
    if let Some(key) = &file_key {
        fields.insert(1, ("file_key", key.clone()));
    }
    let id = match found {
        Some(app) => {
            let path = format!("/api/v1/library/custom-apps/{}", percent_encode(&app.id));
            client.expect("PATCH", &path, &Body::Form(fields), Retry::Idempotent)?;
            app.id
        }
        None => create_once(
            client,
            || Ok(find()?.map(|a| a.id)),
            || {
                let path = "/api/v1/library/custom-apps";
                let outcome = client.send("POST", path, &Body::Form(fields.clone()), Retry::Never);
                let app: Named = created(client, "POST", path, outcome)?.json()?;
                Ok(app.id)
            },
        )?,
    };
    object.id = Some(id);
    Ok(object)
}

/// Uploads the package; a failure that may pass is retried with a new presigned form, since the one
/// that failed may have expired or been used. Returns the `file_key`.
fn upload(client: &Client, build: &Build, options: &PushOptions) -> Result<String> {
    let mut attempt = 0;
    loop {
        match upload_once(client, build, options) {
            Err(e) if attempt < client.settings().retries && super::is_transient(&e) => {
                attempt += 1;
                std::thread::sleep(client.backoff(attempt));
            }
            outcome => return outcome,
        }
    }
}

/// Asks Kandji for a presigned S3 form, then streams the package to it; returns the `file_key`.
fn upload_once(client: &Client, build: &Build, options: &PushOptions) -> Result<String> {
    #[derive(Deserialize)]
    struct Presigned {
        post_url: String,
        post_data: serde_json::Map<String, serde_json::Value>,
        file_key: String,
    }
    let body = Body::Json(serde_json::json!({ "name": upload_name(build) }));
    let presigned: Presigned = client
        .expect(
            "POST",
            "/api/v1/library/custom-apps/upload",
            &body,
            Retry::Idempotent,
        )?
        .json()?;
    // Plain http only where the tenant itself is (a loopback test double, as the spec allows).
    if !(presigned.post_url.starts_with("https://") || client.is_plain_http()) {
        bail!("Kandji's upload URL is not https; refusing to send the package there");
    }
    let fields: Vec<(&str, String)> = presigned
        .post_data
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    let field_refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let artifact = &build.package;
    // S3 takes the fields first and the file last.
    let mut form = Multipart::new(
        &field_refs,
        Some(("file", &upload_name(build), artifact.source())),
        &artifact.sha256[..32],
    )?;
    if let Some(progress) = super::progress_for(options, &artifact.file_name, form.len()) {
        form = form.with_progress(progress);
    }
    let outcome = client.send_anonymous("POST", &presigned.post_url, &Body::Multipart(&form), Retry::Never);
    // Any failure is worth a new form: S3 refuses an expired one (403) as it refuses a bad one.
    let failed = match outcome {
        Ok(r) if r.is_success() => return Ok(presigned.file_key),
        Ok(r) => client.describe_failure("POST", &presigned.post_url, &r),
        Err(e) => format!("{e:#}"),
    };
    Err(anyhow::Error::new(super::Transient).context(failed))
}

const CUSTOM_PROFILES: &str = "/api/v1/library/custom-profiles";

/// The custom profile among `all` that holds the profile `identifier`: its payloads carry identifiers
/// under it (Kandji keeps those), or its own identifier is it (a tenant that keeps that too).
fn find_profile(all: Vec<CustomProfile>, identifier: &str) -> Option<CustomProfile> {
    all.into_iter()
        .find(|p| normalize::belongs_to(p.profile.as_bytes(), identifier))
}

fn custom_profile(
    client: &Client,
    artifact: &Artifact,
    existing: &[CustomProfile],
    options: &PushOptions,
) -> Result<Object> {
    let bytes = artifact.bytes();
    let name = &artifact.display_name;
    let find = || -> Result<Option<CustomProfile>> {
        Ok(find_profile(list(client, CUSTOM_PROFILES)?, &artifact.identifier))
    };
    let found = find_profile(existing.to_vec(), &artifact.identifier);
    let action = match &found {
        None => Action::Create,
        Some(p)
            if &p.name == name
                && p.active
                && p.runs_on_mac
                && normalize::same_profile(bytes, p.profile.as_bytes()) =>
        {
            Action::Unchanged
        }
        Some(_) => Action::Update,
    };
    let mut object = Object {
        kind: "custom-profile",
        name: name.clone(),
        identifier: artifact.identifier.clone(),
        id: found.as_ref().map(|p| p.id.clone()),
        action,
    };
    if options.dry_run || action == Action::Unchanged {
        return Ok(object);
    }
    let form = Multipart::new(
        &[
            ("name", name.as_str()),
            ("active", "true"),
            ("runs_on_mac", "true"),
        ],
        Some(("file", &artifact.file_name, artifact.source())),
        &artifact.sha256[..32],
    )?;
    let id = match found {
        Some(profile) => {
            let path = format!("{CUSTOM_PROFILES}/{}", percent_encode(&profile.id));
            client.expect("PATCH", &path, &Body::Multipart(&form), Retry::Idempotent)?;
            profile.id
        }
        None => create_once(
            client,
            || Ok(find()?.map(|p| p.id)),
            || {
                let outcome = client.send("POST", CUSTOM_PROFILES, &Body::Multipart(&form), Retry::Never);
                let profile: Named = created(client, "POST", CUSTOM_PROFILES, outcome)?.json()?;
                Ok(profile.id)
            },
        )?,
    };
    object.id = Some(id);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys() {
        let id = "com.example.agents";
        let key =
            "companies/companies/x/library/custom_apps/com.example.agents-0123456789abcdef_ae245110.pkg";
        assert_eq!(file_key_hash(key, id), Some("0123456789abcdef"));
        assert_eq!(file_key_hash(key, "com.example"), None);
        assert_eq!(
            file_key_hash("a/com.example.agents-x-0123456789abcdef_1.pkg", id),
            None
        );
        assert_eq!(file_key_hash("a/other.pkg", id), None);
    }

    #[test]
    fn next_links_stay_on_the_tenant() {
        assert_eq!(
            path_and_query("https://evil.example/api/v1/blueprints?page=2").expect("path"),
            "/api/v1/blueprints?page=2"
        );
        assert_eq!(
            path_and_query("/api/v1/x?page=3").expect("path"),
            "/api/v1/x?page=3"
        );
    }
}
