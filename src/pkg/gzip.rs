//! gzip (RFC 1952) around the cpio archives, as pkgbuild writes them.
//!
//! The header is fixed (mtime 0, no name, OS 255) so that the output depends only on the input.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

/// Level 6 is gzip's and pkgbuild's default: the usual size/speed balance.
const LEVEL: u32 = 6;

/// A gzip stream writer; call [`GzipWriter::finish`] to write the trailer.
pub(crate) struct GzipWriter<W: Write> {
    encoder: GzEncoder<W>,
}

impl<W: Write> GzipWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            encoder: GzEncoder::new(inner, Compression::new(LEVEL)),
        }
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        self.encoder.finish()
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}
