//! `inspect`: a human-readable report of a flat package: XAR summary and signatures, Distribution,
//! and per component its PackageInfo, scripts and payload listing (from the BOM, like `lsbom`). Every
//! text taken from the package goes through [`escape_controls`] (as `esc`), errors included.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use openssl::x509::X509;

use super::reader::{Element, HeapRef, RawXar, Toc};
use super::verify::{MAX_SIGNATURE, bom_records, join, read_package_xml, scripts_listing};
use crate::escape::escape_controls as esc;

/// Describe the package at `path`. Fails on a file that cannot be read as a flat package.
pub fn inspect(path: &Path) -> Result<String> {
    describe(path).map_err(|error| anyhow!("{}", esc(&format!("{error:#}"))))
}

fn describe(path: &Path) -> Result<String> {
    let raw = RawXar::open(path)?;
    let toc = raw.decode_toc()?;
    let mut out = String::new();
    writeln!(out, "{}", esc(&path.display().to_string()))?;
    write_toc_summary(&mut out, &raw, &toc)?;
    if let Some(distribution) = read_package_xml(&raw, &toc, "Distribution")? {
        write_distribution(&mut out, &distribution)?;
    }
    for dir in toc.component_dirs() {
        write_component(&mut out, &raw, &toc, dir)
            .with_context(|| format!("{}: component {dir}", path.display()))?;
    }
    Ok(out)
}

fn write_toc_summary(out: &mut String, raw: &RawXar, toc: &Toc) -> Result<()> {
    let header = raw.header;
    writeln!(
        out,
        "xar: header {} bytes, TOC {} bytes ({} compressed), {} entries",
        header.header_size,
        header.toc_len,
        header.toc_compressed_len,
        toc.files.len()
    )?;
    match &toc.checksum {
        Some(checksum) => writeln!(
            out,
            "TOC checksum: {} at heap offset {}, {} bytes",
            esc(&checksum.style),
            checksum.offset,
            checksum.size
        )?,
        None => writeln!(out, "TOC checksum: none")?,
    }
    writeln!(
        out,
        "creation-time: {}",
        esc(toc.creation_time.as_deref().unwrap_or("(none)"))
    )?;
    if let Some(time) = &toc.signature_creation_time {
        writeln!(out, "signature-creation-time: {}", esc(time))?;
    }
    write_signature(out, "signature", toc.signature.as_ref())?;
    write_signature(out, "x-signature", toc.x_signature.as_ref())?;
    if let Some(cms) = &toc.x_signature {
        writeln!(out, "timestamp: {}", esc(&timestamp(raw, cms)))?;
    }
    Ok(())
}

/// The CMS signature's RFC 3161 timestamp: time and authority, once the token checked out against the
/// signature it covers.
fn timestamp(raw: &RawXar, cms: &HeapRef) -> String {
    let token = raw
        .read_heap(cms.offset, cms.size.min(MAX_SIGNATURE))
        .and_then(|der| crate::sign::signature_and_timestamp_token(&der));
    match token {
        Ok((_, None)) => "none".into(),
        Ok((signature, Some(token))) => match crate::sign::timestamp::check_token(&token, &signature, None) {
            Ok(t) => format!("{} by {}", t.time, t.authority),
            Err(e) => format!("INVALID ({e:#})"),
        },
        Err(e) => format!("unreadable ({e:#})"),
    }
}

fn write_signature(out: &mut String, element: &str, signature: Option<&HeapRef>) -> Result<()> {
    let Some(signature) = signature else {
        return Ok(writeln!(out, "{element}: none")?);
    };
    let signer = match signature.certificates.first() {
        Some(leaf) => subject(leaf),
        None => "no certificate".into(),
    };
    writeln!(
        out,
        "{element}: {} at heap offset {}, {} bytes, {} certificate(s), signer {}",
        esc(&signature.style),
        signature.offset,
        signature.size,
        signature.certificates.len(),
        esc(&signer)
    )?;
    Ok(())
}

/// "CN=…, O=…" of a DER certificate, or why it cannot be read.
fn subject(der: &[u8]) -> String {
    let Ok(certificate) = X509::from_der(der) else {
        return "(unparseable certificate)".into();
    };
    certificate
        .subject_name()
        .entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_distribution(out: &mut String, distribution: &Element) -> Result<()> {
    writeln!(
        out,
        "\nDistribution: {}",
        esc(distribution.child_text("title").unwrap_or("(no title)"))
    )?;
    if let Some(product) = distribution.child("product") {
        writeln!(
            out,
            "  product {} {}",
            esc(product.attribute("id").unwrap_or("?")),
            esc(product.attribute("version").unwrap_or(""))
        )?;
    }
    if let Some(options) = distribution.child("options") {
        writeln!(
            out,
            "  hostArchitectures {}",
            esc(options.attribute("hostArchitectures").unwrap_or("(unset)"))
        )?;
    }
    for os in distribution
        .child("allowed-os-versions")
        .into_iter()
        .flat_map(|a| a.children_named("os-version"))
    {
        writeln!(out, "  macOS >= {}", esc(os.attribute("min").unwrap_or("?")))?;
    }
    for choice in distribution.children_named("choice") {
        let refs: Vec<&str> = choice
            .children_named("pkg-ref")
            .filter_map(|r| r.attribute("id"))
            .collect();
        writeln!(
            out,
            "  choice {} [{}]",
            esc(choice.attribute("id").unwrap_or("?")),
            esc(&refs.join(", "))
        )?;
    }
    for pkg_ref in distribution
        .children_named("pkg-ref")
        .filter(|r| !r.text().is_empty())
    {
        writeln!(
            out,
            "  pkg-ref {} {} installKBytes={} -> {}",
            esc(pkg_ref.attribute("id").unwrap_or("?")),
            esc(pkg_ref.attribute("version").unwrap_or("")),
            esc(pkg_ref.attribute("installKBytes").unwrap_or("?")),
            esc(pkg_ref.text())
        )?;
    }
    Ok(())
}

fn write_component(out: &mut String, raw: &RawXar, toc: &Toc, dir: &str) -> Result<()> {
    writeln!(
        out,
        "\ncomponent {}",
        if dir.is_empty() {
            "(archive root)".into()
        } else {
            esc(dir)
        }
    )?;
    if let Some(info) = read_package_xml(raw, toc, &join(dir, "PackageInfo"))? {
        let attribute = |name| esc(info.attribute(name).unwrap_or("(unset)"));
        writeln!(
            out,
            "  identifier {} version {}",
            attribute("identifier"),
            attribute("version")
        )?;
        writeln!(
            out,
            "  install-location {} auth {}",
            attribute("install-location"),
            attribute("auth")
        )?;
        match info.child("payload") {
            Some(payload) => writeln!(
                out,
                "  payload numberOfFiles={} installKBytes={}",
                esc(payload.attribute("numberOfFiles").unwrap_or("?")),
                esc(payload.attribute("installKBytes").unwrap_or("?"))
            )?,
            None => writeln!(out, "  payload-free")?,
        }
    }
    if let Some(scripts) = scripts_listing(raw, toc, dir)? {
        for (name, size, mode) in scripts {
            writeln!(
                out,
                "  script {} {size} bytes mode {:o}",
                esc(&name),
                mode & 0o7777
            )?;
        }
    }
    if let Some(records) = bom_records(raw, toc, dir)? {
        writeln!(out, "  Bom ({} paths):", records.len())?;
        for record in records {
            let link = record
                .link_target
                .map(|target| format!(" -> {}", esc(&target)))
                .unwrap_or_default();
            writeln!(
                out,
                "    {:o} {}/{} {} {}{link}",
                record.mode,
                record.uid,
                record.gid,
                record.size,
                esc(&record.path)
            )?;
        }
    }
    Ok(())
}
