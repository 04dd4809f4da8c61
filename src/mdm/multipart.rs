//! `multipart/form-data` (RFC 7578) streamed from disk: text fields, then at most one file, sent with an
//! exact `Content-Length` and read from the file as it goes, so memory does not grow with the file. Each
//! [`Multipart::reader`] starts the body again, so a retry resends the whole of it.
//!
//! A file part is read through the handle that was hashed when the build was checked (never reopened by
//! name) and hashed again as it is sent: if the bytes differ from the hash, the body fails before its
//! last bytes, so the server never receives a complete upload of anything but what was verified.

use std::fs::File;
use std::io::{Cursor, Read};
use std::os::unix::fs::FileExt;

use anyhow::Result;
use openssl::hash::{Hasher, MessageDigest};

/// Called with the number of bytes sent so far (a progress bar).
pub type Progress = Box<dyn Fn(u64)>;

/// The content of a file part.
pub enum Source<'a> {
    /// Bytes already in memory (a profile, read once and hashed).
    Bytes(&'a [u8]),
    /// A file held open since it was hashed: `len` bytes whose SHA-256 is `sha256` (hex).
    Held {
        file: &'a File,
        len: u64,
        sha256: &'a str,
    },
}

/// A held file as one part sends it.
struct HeldFile {
    file: File,
    len: u64,
    sha256: String,
}

pub struct Multipart {
    boundary: String,
    head: Vec<u8>,
    file: Option<HeldFile>,
    tail: Vec<u8>,
    progress: Option<std::rc::Rc<Progress>>,
}

impl Multipart {
    /// `fields` in order, then `file` as the part `file_field` named `file_name`.
    pub fn new(
        fields: &[(&str, &str)],
        file: Option<(&str, &str, Source<'_>)>,
        boundary_seed: &str,
    ) -> Result<Multipart> {
        let boundary = format!("confine-{boundary_seed}");
        let mut head = Vec::new();
        for (name, value) in fields {
            head.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n",
                    quote(name)
                )
                .as_bytes(),
            );
        }
        let mut held = None;
        let tail = match file {
            Some((field, file_name, source)) => {
                head.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                        quote(field),
                        quote(file_name)
                    )
                    .as_bytes(),
                );
                match source {
                    Source::Bytes(bytes) => head.extend_from_slice(bytes),
                    Source::Held { file, len, sha256 } => {
                        held = Some(HeldFile {
                            file: file.try_clone()?,
                            len,
                            sha256: sha256.to_owned(),
                        });
                    }
                }
                format!("\r\n--{boundary}--\r\n")
            }
            None => format!("--{boundary}--\r\n"),
        };
        Ok(Multipart {
            boundary,
            head,
            file: held,
            tail: tail.into_bytes(),
            progress: None,
        })
    }

    /// Reports bytes sent to `progress` while the body is read.
    pub fn with_progress(mut self, progress: Progress) -> Multipart {
        self.progress = Some(std::rc::Rc::new(progress));
        self
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The exact body length.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.file.as_ref().map_or(0, |f| f.len) + self.tail.len() as u64
    }

    /// A fresh reader over the whole body.
    pub fn reader(&self) -> Result<Box<dyn Read + 'static>> {
        let head = Cursor::new(self.head.clone());
        let tail = Cursor::new(self.tail.clone());
        let body: Box<dyn Read> = match &self.file {
            Some(held) => {
                let verified = Verified {
                    file: held.file.try_clone()?,
                    offset: 0,
                    len: held.len,
                    hasher: Hasher::new(MessageDigest::sha256())?,
                    sha256: held.sha256.clone(),
                };
                Box::new(head.chain(verified).chain(tail))
            }
            None => Box::new(head.chain(tail)),
        };
        Ok(match &self.progress {
            Some(progress) => Box::new(Counting {
                inner: body,
                sent: 0,
                progress: progress.clone(),
            }),
            None => body,
        })
    }
}

/// A held file read from its start by position (the handle's own offset is not used), hashed on the
/// way; the read that would complete it fails instead if the bytes are not the ones hashed before.
struct Verified {
    file: File,
    offset: u64,
    len: u64,
    hasher: Hasher,
    sha256: String,
}

impl Read for Verified {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len - self.offset;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(changed("it is shorter than when it was hashed"));
        }
        self.hasher.update(&buf[..n]).map_err(std::io::Error::other)?;
        self.offset += n as u64;
        if self.offset == self.len {
            let digest = self.hasher.finish().map_err(std::io::Error::other)?;
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            if hex != self.sha256 {
                return Err(changed("its bytes are not the ones hashed"));
            }
        }
        Ok(n)
    }
}

fn changed(how: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "the file changed while it was being uploaded ({how}); the upload was stopped before its end"
    ))
}

struct Counting {
    inner: Box<dyn Read>,
    sent: u64,
    progress: std::rc::Rc<Progress>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        (self.progress)(self.sent);
        Ok(n)
    }
}

/// Field and file names go between double quotes; RFC 7578 §4.2 percent-encodes `"` and line breaks.
fn quote(name: &str) -> String {
    name.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(dir: &std::path::Path, bytes: &[u8]) -> (File, u64) {
        let path = dir.join("a.pkg");
        std::fs::write(&path, bytes).expect("write");
        (File::open(&path).expect("open"), bytes.len() as u64)
    }

    #[test]
    fn length_matches_body() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, len) = held(dir.path(), b"xar!payload");
        let sha256 = hex_sha256(b"xar!payload");
        let source = Source::Held {
            file: &file,
            len,
            sha256: &sha256,
        };
        let form = Multipart::new(&[("key", "k/1")], Some(("file", "a.pkg", source)), "b").expect("form");
        let mut body = Vec::new();
        form.reader()
            .expect("reader")
            .read_to_end(&mut body)
            .expect("read");
        assert_eq!(body.len() as u64, form.len());
        let text = String::from_utf8(body).expect("utf-8");
        assert!(
            text.starts_with("--confine-b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk/1\r\n")
        );
        assert!(text.ends_with("xar!payload\r\n--confine-b--\r\n"));
    }

    fn hex_sha256(bytes: &[u8]) -> String {
        openssl::sha::sha256(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A file rewritten in place after it was hashed (same length, same inode) never completes a body.
    #[test]
    fn a_file_changed_after_hashing_is_not_sent_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, len) = held(dir.path(), b"xar!payload");
        let sha256 = hex_sha256(b"xar!payload");
        std::fs::write(dir.path().join("a.pkg"), b"xar!PAYLOAD").expect("rewrite");
        let source = Source::Held {
            file: &file,
            len,
            sha256: &sha256,
        };
        let form = Multipart::new(&[], Some(("file", "a.pkg", source)), "b").expect("form");
        let mut body = Vec::new();
        let error = form
            .reader()
            .expect("reader")
            .read_to_end(&mut body)
            .expect_err("refused");
        assert!(
            error.to_string().contains("changed while it was being uploaded"),
            "{error}"
        );
        assert!(!body.ends_with(b"--confine-b--\r\n"));
    }
}
