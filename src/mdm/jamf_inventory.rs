//! Jamf Pro computer extension attributes that report each Mac's install back to Jamf: the scripts of
//! [`crate::export::inventory`] (install result and failed checks, release, OpenClaw versions, deploy
//! public keys), kept current by `confine push` through the Jamf Pro API
//! (`/api/v1/computer-extension-attributes`, Jamf Pro API schema 11.30.1: `ComputerExtensionAttributes`).
//!
//! Each attribute is found by name in the whole list, then checked to be confine's by the
//! `confine-id: <fleet identifier>.inventory.<attribute>` its description starts with (an attribute of the
//! same name that is not confine's is an error, never taken over). It is created when missing, updated
//! when any field differs, and left alone otherwise, so a second push makes no write.

use anyhow::{Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Body, Client, Retry, percent_encode};
use super::{Action, Build, Listing, Object, PushOptions, create_once, created};

const PATH: &str = "/api/v1/computer-extension-attributes";

/// One extension attribute the build asks for.
#[derive(Debug, Clone)]
pub struct ExtensionAttribute {
    /// Its name in Jamf Pro, `<fleet>-<attribute>`.
    pub name: String,
    /// `<fleet identifier>.inventory.<attribute>`.
    pub identifier: String,
    pub script: String,
}

/// A record as Jamf Pro lists it (the fields confine sets).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    data_type: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    inventory_display_type: Option<String>,
    #[serde(default)]
    input_type: Option<String>,
    #[serde(default)]
    script_contents: Option<String>,
}

fn marker(identifier: &str) -> String {
    format!("confine-id: {identifier}")
}

fn desired(attribute: &ExtensionAttribute) -> Value {
    json!({
        "name": attribute.name,
        "description": format!(
            "{}. Reported by the fleet's inventory script; confine push replaces edits made here.",
            marker(&attribute.identifier)
        ),
        "dataType": "STRING",
        "enabled": true,
        "inventoryDisplayType": "EXTENSION_ATTRIBUTES",
        "inputType": "SCRIPT",
        "scriptContents": attribute.script,
    })
}

fn current(record: &Record, desired: &Value) -> bool {
    record.description.as_deref() == desired["description"].as_str()
        && record.data_type.as_deref() == Some("STRING")
        && record.enabled == Some(true)
        && record.inventory_display_type.as_deref() == Some("EXTENSION_ATTRIBUTES")
        && record.input_type.as_deref() == Some("SCRIPT")
        && record.script_contents.as_deref() == desired["scriptContents"].as_str()
}

/// Creates, updates or leaves alone each extension attribute of the build.
pub fn push(client: &Client, build: &Build, options: &PushOptions, objects: &mut Vec<Object>) -> Result<()> {
    for attribute in &build.extension_attributes {
        objects.push(push_one(client, attribute, options)?);
    }
    Ok(())
}

/// What a push would send, from the build alone.
pub fn plan(build: &Build) -> Vec<Object> {
    build
        .extension_attributes
        .iter()
        .map(|a| super::planned("extension-attribute", a.name.clone(), &a.identifier))
        .collect()
}

fn push_one(client: &Client, attribute: &ExtensionAttribute, options: &PushOptions) -> Result<Object> {
    let desired = desired(attribute);
    let found = find(client, attribute)?;
    let action = match &found {
        None => Action::Create,
        Some(record) if current(record, &desired) => Action::Unchanged,
        Some(_) => Action::Update,
    };
    let mut object = Object {
        kind: "extension-attribute",
        name: attribute.name.clone(),
        identifier: attribute.identifier.clone(),
        id: found.as_ref().map(|r| r.id.clone()),
        action,
    };
    if options.dry_run || action == Action::Unchanged {
        return Ok(object);
    }
    let record = match found {
        Some(record) => {
            let path = format!("{PATH}/{}", percent_encode(&record.id));
            client.expect("PUT", &path, &Body::Json(desired), Retry::Idempotent)?;
            record
        }
        None => create_once(
            client,
            || find(client, attribute),
            || {
                let outcome = client.send("POST", PATH, &Body::Json(desired.clone()), Retry::Never);
                created(client, "POST", PATH, outcome)?;
                find(client, attribute)?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "Jamf Pro created the extension attribute `{}` but does not list it",
                        attribute.name
                    )
                })
            },
        )?,
    };
    object.id = Some(record.id);
    Ok(object)
}

/// The attribute named like `attribute`, if any; an error when it exists and is not confine's.
fn find(client: &Client, attribute: &ExtensionAttribute) -> Result<Option<Record>> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(rename = "totalCount")]
        total: usize,
        #[serde(default)]
        results: Vec<Record>,
    }
    let mut listing = Listing::default();
    let mut seen = 0;
    for page in 0.. {
        let path = format!("{PATH}?page={page}&page-size=200");
        let response = client.expect("GET", &path, &Body::Empty, Retry::Idempotent)?;
        let answer: Page = response.json()?;
        listing.page(PATH, answer.results.len(), response.body.len())?;
        seen += answer.results.len();
        let done = answer.results.is_empty() || seen >= answer.total;
        if let Some(record) = answer.results.into_iter().find(|r| r.name == attribute.name) {
            let ours = record
                .description
                .as_deref()
                .is_some_and(|d| d.starts_with(&marker(&attribute.identifier)));
            if !ours {
                bail!(
                    "Jamf Pro has an extension attribute `{}` that confine did not create (its description does not start with `{}`); rename or delete it, then push again",
                    attribute.name,
                    marker(&attribute.identifier)
                );
            }
            return Ok(Some(record));
        }
        if done {
            break;
        }
    }
    Ok(None)
}
