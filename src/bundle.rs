//! `confine build --bundle`: one zip of every artifact plus `manifest.json`, to attach to a CI run or a
//! release.
//!
//! The zip is deterministic: entries in manifest order (sorted by path), every timestamp the build's
//! `SOURCE_DATE_EPOCH` (or [`crate::build::DEFAULT_EPOCH`]), permissions 0644, Unix "made by", no extra
//! fields. Same artifacts, same bytes. Zip's DOS timestamps only cover 1980 to 2107 and count seconds in
//! twos; an epoch outside that range is clamped to it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::output::Manifest;
use crate::pkg::civil_from_days;

/// The bundle's file name inside the output folder.
pub fn file_name(fleet: &str, release: &str) -> String {
    format!("{fleet}-{release}.zip")
}

/// Zips `manifest.json` and every artifact the manifest lists, all read from `dir`, into `zip_path`.
pub fn write(dir: &Path, manifest: &Manifest, zip_path: &Path, epoch: u64) -> Result<()> {
    let file = File::create(zip_path).with_context(|| format!("creating {}", zip_path.display()))?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(dos_time(epoch))
        .unix_permissions(0o644)
        .system(zip::System::Unix);
    let paths = std::iter::once("manifest.json").chain(manifest.artifacts.iter().map(|a| a.path.as_str()));
    for relative in paths {
        let path = dir.join(relative);
        let mut source = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let size = source.metadata()?.len();
        zip.start_file(relative, options.large_file(size >= u64::from(u32::MAX)))
            .with_context(|| format!("adding {relative} to the bundle"))?;
        std::io::copy(&mut source, &mut zip).with_context(|| format!("adding {relative} to the bundle"))?;
    }
    let mut out = zip.finish().context("finishing the bundle")?;
    out.flush()
        .with_context(|| format!("writing {}", zip_path.display()))
}

/// Seconds since 1970 (UTC) as a zip timestamp, clamped to the years zip can store.
fn dos_time(epoch: u64) -> DateTime {
    let days = i64::try_from(epoch / 86_400).unwrap_or(i64::MAX);
    let seconds = epoch % 86_400;
    let (year, month, day) = civil_from_days(days);
    let clamped = year.clamp(1980, 2107);
    let (month, day, seconds) = if clamped == year {
        (month, day, seconds)
    } else if year < 1980 {
        (1, 1, 0)
    } else {
        (12, 31, 86_399)
    };
    DateTime::from_date_and_time(
        clamped as u16,
        month as u8,
        day as u8,
        (seconds / 3600) as u8,
        (seconds / 60 % 60) as u8,
        (seconds % 60) as u8,
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_outside_zip_range_are_clamped() {
        let t = dos_time(0);
        assert_eq!((t.year(), t.month(), t.day()), (1980, 1, 1));
        let t = dos_time(crate::build::DEFAULT_EPOCH + 3661);
        assert_eq!((t.year(), t.hour(), t.minute(), t.second()), (2024, 1, 1, 0));
    }
}
