//! gzip (RFC 1952) around the cpio archives, compressed on every core into one standard stream.
//!
//! The technique is pigz's (Mark Adler): the input is cut into fixed-size blocks; each block is
//! compressed independently as raw deflate, primed with the previous block's last 32 KiB as a preset
//! dictionary (so matches may reach back across the cut, as in a serial stream), and ended with a
//! sync flush (an empty stored block) so it finishes on a byte boundary. Concatenated in order, the
//! blocks form one valid deflate stream; only the last block sets BFINAL. The CRC-32 of each block is
//! combined in order for the trailer.
//!
//! Output is deterministic: block boundaries depend only on the byte count, never on thread timing.
//! The header is fixed (mtime 0, no name, OS 255).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Level 6 is gzip's and pkgbuild's default: the usual size/speed balance.
const LEVEL: u32 = 6;
/// Input per block. Larger blocks make the per-block cost (dictionary priming, a 5-byte flush
/// marker) negligible; 1 MiB keeps memory at a few MiB per worker.
const BLOCK: usize = 1 << 20;
/// deflate's window: the most a match can reach back.
const WINDOW: usize = 32 * 1024;
/// More workers than this stop paying off for package-sized inputs.
const MAX_WORKERS: usize = 8;
/// RFC 1952 header: deflate, no flags, mtime 0, no extra flags, OS "unknown" (255).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A compressed block and the CRC-32 of its input, or the error that stopped it.
type BlockResult = io::Result<(Vec<u8>, Crc)>;

struct Job {
    input: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
    done: SyncSender<BlockResult>,
}

/// A gzip stream writer; call [`GzipWriter::finish`] to write the last block and the trailer.
pub(crate) struct GzipWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
    /// The last `WINDOW` bytes of the previous block's input.
    dictionary: Vec<u8>,
    crc: Crc,
    in_flight: VecDeque<Receiver<BlockResult>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> GzipWriter<W> {
    /// Start the stream: writes the header and starts one worker per core.
    pub(crate) fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(&HEADER)?;
        let count = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_WORKERS);
        let (jobs, queue) = sync_channel::<Job>(count);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..count)
            .map(|_| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || work(&queue))
            })
            .collect();
        Ok(Self {
            inner,
            pending: Vec::with_capacity(BLOCK),
            dictionary: Vec::new(),
            crc: Crc::new(),
            in_flight: VecDeque::new(),
            jobs: Some(jobs),
            workers,
        })
    }

    fn submit(&mut self, input: Vec<u8>, last: bool) -> io::Result<()> {
        let dictionary = std::mem::replace(
            &mut self.dictionary,
            input[input.len().saturating_sub(WINDOW)..].to_vec(),
        );
        let (done, result) = sync_channel(1);
        let job = Job {
            input,
            dictionary,
            last,
            done,
        };
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?;
        jobs.send(job)
            .map_err(|_| io::Error::other("gzip worker threads stopped"))?;
        self.in_flight.push_back(result);
        // Bound memory: wait for the oldest block once every worker has one queued and one running.
        while self.in_flight.len() > 2 * self.workers.len() {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(result) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (compressed, crc) = result
            .recv()
            .map_err(|_| io::Error::other("gzip worker thread died"))??;
        self.crc.combine(&crc);
        self.inner.write_all(&compressed)
    }

    pub(crate) fn finish(mut self) -> io::Result<W> {
        let last = std::mem::take(&mut self.pending);
        self.submit(last, true)?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        self.inner.write_all(&self.crc.amount().to_le_bytes())?;
        self.jobs = None;
        for worker in self.workers.drain(..) {
            worker
                .join()
                .map_err(|_| io::Error::other("gzip worker thread panicked"))?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = buf.len().min(BLOCK - self.pending.len());
        self.pending.extend_from_slice(&buf[..take]);
        if self.pending.len() == BLOCK {
            let block = std::mem::replace(&mut self.pending, Vec::with_capacity(BLOCK));
            self.submit(block, false)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are only cut at BLOCK boundaries so that output never depends on flush calls.
        Ok(())
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut crc = Crc::new();
        crc.update(&job.input);
        let result = deflate_block(&job.input, &job.dictionary, job.last).map(|compressed| (compressed, crc));
        // The writer may have gone away after an error elsewhere; nothing to report to then.
        let _ = job.done.send(result);
    }
}

/// Raw deflate of one block, primed with `dictionary`; sync-flushed, or finished if `last`.
fn deflate_block(input: &[u8], dictionary: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(Compression::new(LEVEL), false);
    if !dictionary.is_empty() {
        compress.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = compress.total_in() as usize == input.len();
        // zlib's rule: a flush is complete when it returns with output space to spare.
        let flushed = all_in && out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError if flushed && !last => return Ok(out),
            Status::Ok | Status::BufError => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(data: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
        let mut writer = GzipWriter::new(Vec::new())?;
        for piece in data.chunks(chunk.max(1)) {
            writer.write_all(piece)?;
        }
        writer.finish()
    }

    /// Compressible text over several blocks, with a tail that does not fill a block.
    fn sample() -> Vec<u8> {
        (0..2 * BLOCK + 12_345)
            .map(|i| b"launchd plist agent "[i % 20] ^ u8::from(i % 4099 == 0))
            .collect()
    }

    #[test]
    fn blocks_join_into_one_valid_gzip_stream() -> io::Result<()> {
        let data = sample();
        let compressed = gzip(&data, 70_000)?;
        assert_eq!(compressed[..10], HEADER);
        let mut decoded = Vec::new();
        // GzDecoder checks the CRC-32 and length trailer.
        flate2::read::GzDecoder::new(compressed.as_slice()).read_to_end(&mut decoded)?;
        assert!(decoded == data);
        // Dictionary priming keeps the ratio of a serial stream: this text is ~100x compressible.
        assert!(compressed.len() < data.len() / 50, "{} bytes", compressed.len());
        Ok(())
    }

    #[test]
    fn output_does_not_depend_on_write_sizes() -> io::Result<()> {
        let data = sample();
        assert!(gzip(&data, 1)? == gzip(&data, data.len())?);
        let mut empty = Vec::new();
        flate2::read::GzDecoder::new(gzip(&[], 1)?.as_slice()).read_to_end(&mut empty)?;
        assert!(empty.is_empty());
        Ok(())
    }
}
