//! `multipart/form-data` (RFC 7578) streamed from disk: text fields, then at most one file, sent with an
//! exact `Content-Length` and read from the file as it goes, so memory does not grow with the file. Each
//! [`Multipart::reader`] reopens the file, so a retry resends the whole body.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Called with the number of bytes sent so far (a progress bar).
pub type Progress = Box<dyn Fn(u64)>;

pub struct Multipart {
    boundary: String,
    head: Vec<u8>,
    file: Option<PathBuf>,
    file_len: u64,
    tail: Vec<u8>,
    progress: Option<std::rc::Rc<Progress>>,
}

impl Multipart {
    /// `fields` in order, then `file` as the part `file_field` named `file_name`.
    pub fn new(
        fields: &[(&str, &str)],
        file: Option<(&str, &str, &Path)>,
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
        let (path, file_len) = match file {
            Some((field, file_name, path)) => {
                head.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                        quote(field),
                        quote(file_name)
                    )
                    .as_bytes(),
                );
                let len = std::fs::metadata(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .len();
                (Some(path.to_path_buf()), len)
            }
            None => (None, 0),
        };
        let tail = if path.is_some() {
            format!("\r\n--{boundary}--\r\n")
        } else {
            format!("--{boundary}--\r\n")
        };
        Ok(Multipart {
            boundary,
            head,
            file: path,
            file_len,
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
        self.head.len() as u64 + self.file_len + self.tail.len() as u64
    }

    /// A fresh reader over the whole body.
    pub fn reader(&self) -> Result<Box<dyn Read + 'static>> {
        let head = Cursor::new(self.head.clone());
        let tail = Cursor::new(self.tail.clone());
        let body: Box<dyn Read> = match &self.file {
            Some(path) => {
                let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
                // A file that changed size since it was checked would break Content-Length.
                Box::new(head.chain(file.take(self.file_len)).chain(tail))
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

    #[test]
    fn length_matches_body() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.pkg");
        std::fs::write(&path, b"xar!payload").expect("write");
        let form = Multipart::new(&[("key", "k/1")], Some(("file", "a.pkg", &path)), "b").expect("form");
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
}
