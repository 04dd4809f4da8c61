//! The bill of materials (`Bom`): Apple's "BOMStore" file listing every payload path with its mode,
//! owner, size and checksum. It becomes the install receipt (`pkgutil --files`, `lsbom`).
//!
//! Apple does not document the format. The layout here follows bomutils' `mkbom` (hogliux/bomutils
//! `src/bom.h`, `src/mkbom.cpp`) as summarised in `shared/reference/pkg.md` §3: a 512-byte header,
//! named variables (`BomInfo`, `Paths`, `HLIndex`, `VIndex`, `Size64`), a block table, big-endian
//! integers throughout. Paths get ids in breadth-first order with siblings sorted by name, so the leaf
//! entries come out sorted by (parent id, name); leaves hold at most 256 entries and are linked
//! forward/backward under one branch node. Checksums are POSIX `cksum` CRCs.
//!
//! Not supported: hard-link (`HLIndex`) and 64-bit size (`Size64`) entries (both trees are written
//! empty), Mach-O architecture records, files of 4 GiB or more.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use anyhow::{Context, Result, bail, ensure};

use super::listing::{Listing, PathKind, Record};
use crate::limits::{MAX_LISTING_BYTES, MAX_NAME_BYTES, MAX_NESTING, MAX_PATH_BYTES, MAX_PATHS};

/// POSIX `cksum`: CRC-32 with polynomial 0x04C11DB7, MSB first, initial value 0, the length appended
/// least-significant byte first, the result inverted. Not zlib's (reflected) crc32.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cksum {
    crc: u32,
    len: u64,
}

const POLY: u32 = 0x04C1_1DB7;
/// Slicing-by-8 tables: `TABLES[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
static TABLES: [[u32; 256]; 8] = tables();

const fn tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        tables[0][byte] = crc;
        byte += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut byte = 0;
        while byte < 256 {
            let previous = tables[k - 1][byte];
            tables[k][byte] = (previous << 8) ^ tables[0][(previous >> 24) as usize];
            byte += 1;
        }
        k += 1;
    }
    tables
}

impl Cksum {
    pub(crate) fn new() -> Self {
        Self { crc: 0, len: 0 }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        let mut chunks = data.chunks_exact(8);
        let t = &TABLES;
        for chunk in &mut chunks {
            let a = self.crc ^ u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let b = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            self.crc = t[7][(a >> 24) as usize]
                ^ t[6][((a >> 16) & 0xff) as usize]
                ^ t[5][((a >> 8) & 0xff) as usize]
                ^ t[4][(a & 0xff) as usize]
                ^ t[3][(b >> 24) as usize]
                ^ t[2][((b >> 16) & 0xff) as usize]
                ^ t[1][((b >> 8) & 0xff) as usize]
                ^ t[0][(b & 0xff) as usize];
        }
        for &byte in chunks.remainder() {
            self.crc = self.update_byte(byte);
        }
    }

    fn update_byte(&self, byte: u8) -> u32 {
        (self.crc << 8) ^ TABLES[0][((self.crc >> 24) as u8 ^ byte) as usize]
    }

    pub(crate) fn finish(mut self) -> u32 {
        let mut len = self.len;
        while len != 0 {
            self.crc = self.update_byte(len as u8);
            len >>= 8;
        }
        !self.crc
    }
}

/// BOM path types (bomutils `bom.h`).
const TYPE_FILE: u8 = 1;
const TYPE_DIR: u8 = 2;
const TYPE_LINK: u8 = 3;
/// mkbom's value for non-Mach-O files; Apple writes 0x000f, but the field is only meaningful for fat
/// binaries.
const ARCHITECTURE: u16 = 3;
const HEADER_LEN: usize = 512;
const LEAF_CAPACITY: usize = 256;

/// The BOM's blocks, numbered from 1 (block 0 is the null block every BOM starts its table with),
/// spooled to temporary files: the block data, and the block table of (address, length).
struct Blocks {
    data: BufWriter<File>,
    table: BufWriter<File>,
    address: usize,
    count: u32,
}

impl Blocks {
    fn new(data_start: usize) -> Result<Self> {
        let spool = || -> Result<BufWriter<File>> {
            Ok(BufWriter::new(
                tempfile::tempfile().context("cannot create a temporary file for the BOM")?,
            ))
        };
        Ok(Self {
            data: spool()?,
            table: spool()?,
            address: data_start,
            count: 0,
        })
    }

    fn add(&mut self, block: &[u8]) -> Result<u32> {
        self.data.write_all(block)?;
        self.table
            .write_all(&u32::try_from(self.address)?.to_be_bytes())?;
        self.table.write_all(&u32::try_from(block.len())?.to_be_bytes())?;
        self.address += block.len();
        self.count += 1;
        Ok(self.count)
    }
}

/// Where each block goes. Paths get ids in breadth-first order; path `id` owns three consecutive
/// blocks (record, info, file) after BomInfo, then come the leaves, the branch (if more than one leaf),
/// the Paths tree and the empty trees: mkbom's numbering.
struct Layout {
    paths: u32,
    leaves: u32,
}

impl Layout {
    fn info_block(id: u32) -> u32 {
        3 * id
    }
    fn file_block(id: u32) -> u32 {
        3 * id + 1
    }
    fn first_leaf(&self) -> u32 {
        3 * self.paths + 2
    }
    fn paths_tree(&self) -> u32 {
        self.first_leaf() + self.leaves + u32::from(self.leaves > 1)
    }
    /// BomInfo, Paths, HLIndex, VIndex, Size64.
    fn vars(&self) -> [(&'static str, u32); 5] {
        let tree = self.paths_tree();
        [
            ("BomInfo", 1),
            ("Paths", tree),
            ("HLIndex", tree + 2),
            ("VIndex", tree + 5),
            ("Size64", tree + 7),
        ]
    }
}

/// Write the BOM of a Payload, from the listing its cpio writer kept, to `out`. Memory stays flat:
/// the blocks are spooled to temporary files, and the listing is read in order from disk.
pub(crate) fn write(listing: &Listing, mtime: u64, out: &mut dyn Write) -> Result<()> {
    let mtime = u32::try_from(mtime).context("BOM: mtime does not fit the 32-bit field")?;
    let paths = u32::try_from(listing.len()).context("BOM: too many paths")?;
    let leaves = paths.div_ceil(LEAF_CAPACITY as u32);
    ensure!(leaves <= u32::from(u16::MAX), "BOM: too many paths");
    let layout = Layout { paths, leaves };
    let vars = var_bytes(&layout.vars());
    let mut blocks = Blocks::new(HEADER_LEN + vars.len())?;
    blocks.add(&bom_info(paths))?;
    listing.breadth_first(|id, parent_id, record| {
        let block = path_record(record, mtime).with_context(|| format!("BOM: /{}", record.path))?;
        let record_block = blocks.add(&block)?;
        blocks.add(&[id.to_be_bytes(), record_block.to_be_bytes()].concat())?;
        let mut file = parent_id.to_be_bytes().to_vec();
        file.extend_from_slice(record.name().as_bytes());
        file.push(0);
        blocks.add(&file)?;
        Ok(())
    })?;
    add_paths_tree(&mut blocks, &layout)?;
    add_empty_trees(&mut blocks)?;
    ensure!(
        blocks.count == layout.vars()[4].1,
        "BOM: wrote {} blocks, laid out {}",
        blocks.count,
        layout.vars()[4].1
    );
    serialize(blocks, &vars, out)
}

fn bom_info(path_count: u32) -> Vec<u8> {
    let mut block = Vec::with_capacity(28);
    block.extend_from_slice(&1u32.to_be_bytes());
    // mkbom counts the paths plus one; Apple's fixture agrees.
    block.extend_from_slice(&(path_count + 1).to_be_bytes());
    // One all-zero info entry, as mkbom writes; its meaning is unknown.
    block.extend_from_slice(&1u32.to_be_bytes());
    block.extend_from_slice(&[0; 16]);
    block
}

/// The 31-byte bomutils path record (plus the link target for symlinks).
fn path_record(record: &Record, mtime: u32) -> Result<Vec<u8>> {
    let path_type = match record.kind {
        PathKind::Directory => TYPE_DIR,
        PathKind::File => TYPE_FILE,
        PathKind::Symlink => TYPE_LINK,
    };
    let size = u32::try_from(record.size).context("files of 4 GiB or more are not supported")?;
    let mut block = Vec::with_capacity(31);
    block.extend_from_slice(&[path_type, 1]);
    block.extend_from_slice(&ARCHITECTURE.to_be_bytes());
    block.extend_from_slice(&u16::try_from(record.st_mode)?.to_be_bytes());
    for value in [record.uid, record.gid, mtime, size] {
        block.extend_from_slice(&value.to_be_bytes());
    }
    block.push(1);
    let cksum = match record.kind {
        PathKind::Directory => 0,
        PathKind::File | PathKind::Symlink => record.cksum,
    };
    block.extend_from_slice(&cksum.to_be_bytes());
    match &record.link_target {
        Some(target) if record.kind == PathKind::Symlink => {
            block.extend_from_slice(&(target.len() as u32 + 1).to_be_bytes());
            block.extend_from_slice(target.as_bytes());
            block.push(0);
        }
        _ => block.extend_from_slice(&0u32.to_be_bytes()),
    }
    Ok(block)
}

/// A `Paths` node: u16 isLeaf, u16 count, u32 forward, u32 backward, then (u32, u32) pairs.
fn paths_node(is_leaf: bool, forward: u32, backward: u32, pairs: &[(u32, u32)]) -> Result<Vec<u8>> {
    let count = u16::try_from(pairs.len()).context("BOM: too many paths")?;
    let mut node = Vec::with_capacity(12 + 8 * pairs.len());
    node.extend_from_slice(&u16::from(is_leaf).to_be_bytes());
    node.extend_from_slice(&count.to_be_bytes());
    node.extend_from_slice(&forward.to_be_bytes());
    node.extend_from_slice(&backward.to_be_bytes());
    for (first, second) in pairs {
        node.extend_from_slice(&first.to_be_bytes());
        node.extend_from_slice(&second.to_be_bytes());
    }
    Ok(node)
}

/// The leaves (256 (info, file) pairs each, linked both ways), a branch whose entries are (leaf block,
/// block of the leaf's last File) if there is more than one leaf, as mkbom does, then the Paths tree.
fn add_paths_tree(blocks: &mut Blocks, layout: &Layout) -> Result<()> {
    let first = layout.first_leaf();
    let last = first + layout.leaves - 1;
    let mut branch = Vec::with_capacity(layout.leaves as usize);
    for (leaf, index) in (0..layout.leaves).zip(first..) {
        let ids = leaf * LEAF_CAPACITY as u32 + 1..=((leaf + 1) * LEAF_CAPACITY as u32).min(layout.paths);
        let pairs: Vec<(u32, u32)> = ids
            .map(|id| (Layout::info_block(id), Layout::file_block(id)))
            .collect();
        let forward = if index == last { 0 } else { index + 1 };
        let backward = if index == first { 0 } else { index - 1 };
        let added = blocks.add(&paths_node(true, forward, backward, &pairs)?)?;
        debug_assert_eq!(added, index);
        branch.push((index, pairs.last().map_or(0, |&(_, file)| file)));
    }
    let root = if layout.leaves == 1 {
        first
    } else {
        blocks.add(&paths_node(false, 0, 0, &branch)?)?
    };
    let tree_block = blocks.add(&tree(root, 4096, layout.paths))?;
    debug_assert_eq!(tree_block, layout.paths_tree());
    Ok(())
}

/// A `tree` block: "tree", version 1, root Paths block, block size, path count, one zero byte.
fn tree(child: u32, block_size: u32, path_count: u32) -> Vec<u8> {
    let mut block = b"tree".to_vec();
    for value in [1, child, block_size, path_count] {
        block.extend_from_slice(&value.to_be_bytes());
    }
    block.push(0);
    block
}

/// `HLIndex`, `VIndex` and `Size64` are present but empty in every pkgbuild BOM without hard links.
fn add_empty_trees(blocks: &mut Blocks) -> Result<()> {
    let empty_leaf = [1u16.to_be_bytes().as_slice(), &[0; 10]].concat();
    let hl_index = blocks.add(&empty_leaf)?;
    blocks.add(&tree(hl_index, 4096, 0))?;
    let v_leaf = blocks.add(&empty_leaf)?;
    let v_tree = blocks.add(&tree(v_leaf, 128, 0))?;
    let v_index = [1u32.to_be_bytes(), v_tree.to_be_bytes(), 0u32.to_be_bytes()].concat();
    blocks.add(&[v_index.as_slice(), &[0]].concat())?;
    let size64 = blocks.add(&empty_leaf)?;
    blocks.add(&tree(size64, 4096, 0))?;
    Ok(())
}

fn var_bytes(vars: &[(&str, u32)]) -> Vec<u8> {
    let mut bytes = (vars.len() as u32).to_be_bytes().to_vec();
    for (name, block) in vars {
        bytes.extend_from_slice(&block.to_be_bytes());
        // Names carry a length byte and no NUL: apple-bom 0.3's extra NUL is what broke its BOMs.
        bytes.push(name.len() as u8);
        bytes.extend_from_slice(name.as_bytes());
    }
    bytes
}

/// Header (padded to 512), vars, block data, then the block table and an empty free list, as mkbom
/// lays them out.
fn serialize(blocks: Blocks, vars: &[u8], out: &mut dyn Write) -> Result<()> {
    let index_len = 4 + 8 + 8 * blocks.count as usize + 4 + 16;
    let mut header = b"BOMStore".to_vec();
    for value in [
        1,
        blocks.count as usize,
        blocks.address,
        index_len,
        HEADER_LEN,
        vars.len(),
    ] {
        header.extend_from_slice(&u32::try_from(value)?.to_be_bytes());
    }
    header.resize(HEADER_LEN, 0);
    out.write_all(&header)?;
    out.write_all(vars)?;
    let rewound = |spool: BufWriter<File>| -> Result<File> {
        let mut file = spool.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    };
    io::copy(&mut rewound(blocks.data)?, out)?;
    out.write_all(&(blocks.count + 1).to_be_bytes())?;
    out.write_all(&[0; 8])?;
    io::copy(&mut rewound(blocks.table)?, out)?;
    // Free list: zero entries, followed by two empty slots like mkbom.
    out.write_all(&[0; 4 + 16])?;
    Ok(())
}

/// One path as read back from a BOM (ours or Apple's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BomRecord {
    /// "." or "./a/b", as in the cpio Payload.
    pub(crate) path: String,
    pub(crate) path_type: u8,
    pub(crate) mode: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u32,
    /// Absent from Apple's 23-byte directory records.
    pub(crate) cksum: Option<u32>,
    pub(crate) link_target: Option<String>,
}

impl BomRecord {
    pub(crate) fn is_directory(&self) -> bool {
        self.path_type == TYPE_DIR
    }
}

/// Read the `Paths` tree of a BOM. Lenient about record length (Apple's 2011 records are 23 or 27
/// bytes, bomutils' 31), strict about every offset, so a corrupt BOM gives an error, not a panic; every
/// walk is bounded by [`crate::limits`] and stops at the first block it meets twice.
pub(crate) fn read(data: &[u8]) -> Result<Vec<BomRecord>> {
    let bom = ParsedBom::parse(data)?;
    let tree = bom.var("Paths")?;
    ensure!(tree.get(..4) == Some(b"tree"), "BOM: Paths is not a tree block");
    let mut node = be32(tree, 8)?;
    let mut visited = HashSet::new();
    // Descend to the first leaf, then follow the forward links.
    while be16(bom.block(node)?, 0)? == 0 {
        ensure!(
            visited.insert(node),
            "BOM: Paths branches form a cycle at block {node}"
        );
        ensure!(
            visited.len() <= MAX_NESTING,
            "BOM: Paths tree is deeper than {MAX_NESTING} (limit)"
        );
        node = be32(bom.block(node)?, 12)?;
    }
    let mut found = Vec::new();
    while node != 0 {
        ensure!(
            visited.insert(node),
            "BOM: Paths leaves form a cycle at block {node}"
        );
        let leaf = bom.block(node)?;
        let count = usize::from(be16(leaf, 2)?);
        ensure!(
            found.len() + count <= MAX_PATHS,
            "BOM: more than {MAX_PATHS} paths (limit)"
        );
        for index in 0..count {
            let info = bom.block(be32(leaf, 12 + 8 * index)?)?;
            let file = bom.block(be32(leaf, 16 + 8 * index)?)?;
            found.push(read_path(&bom, info, file)?);
        }
        node = be32(leaf, 4)?;
    }
    resolve_names(found)
}

struct RawPath {
    id: u32,
    parent: u32,
    name: String,
    record: BomRecord,
}

fn read_path(bom: &ParsedBom, info: &[u8], file: &[u8]) -> Result<RawPath> {
    let id = be32(info, 0)?;
    let record = bom.block(be32(info, 4)?)?;
    let parent = be32(file, 0)?;
    let name = file.get(4..).context("BOM: File block too short")?;
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    ensure!(
        name.len() <= MAX_NAME_BYTES,
        "BOM: a path name of {} bytes exceeds the limit of {MAX_NAME_BYTES}",
        name.len()
    );
    let name = String::from_utf8(name.to_vec()).context("BOM: path name is not UTF-8")?;
    ensure!(
        !name.is_empty() && !name.contains('/'),
        "BOM: path name {name:?} is empty or contains '/'"
    );
    ensure!(
        record.len() >= 22,
        "BOM: path record of {} bytes is too short",
        record.len()
    );
    let path_type = record[0];
    let link_target = if path_type == TYPE_LINK && record.len() > 31 {
        let target = record[31..].split(|&b| b == 0).next().unwrap_or_default();
        ensure!(
            target.len() <= MAX_PATH_BYTES,
            "BOM: {name}: link target of {} bytes exceeds the limit of {MAX_PATH_BYTES}",
            target.len()
        );
        Some(String::from_utf8_lossy(target).into_owned())
    } else {
        None
    };
    let record = BomRecord {
        path: String::new(),
        path_type,
        mode: be16(record, 4)?,
        uid: be32(record, 6)?,
        gid: be32(record, 10)?,
        size: be32(record, 18)?,
        cksum: if record.len() >= 27 {
            Some(be32(record, 23)?)
        } else {
            None
        },
        link_target,
    };
    Ok(RawPath {
        id,
        parent,
        name,
        record,
    })
}

/// Turn (id, parent id, name) triples into "./a/b" paths, in linear time: each path is its parent's
/// path plus its name, and each parent's path is built once, walking up only to the nearest built one.
fn resolve_names(raw: Vec<RawPath>) -> Result<Vec<BomRecord>> {
    let mut index_of = HashMap::with_capacity(raw.len());
    for (index, path) in raw.iter().enumerate() {
        ensure!(
            index_of.insert(path.id, index).is_none(),
            "BOM: path id {} appears twice",
            path.id
        );
    }
    let mut paths: Vec<Option<String>> = vec![None; raw.len()];
    let mut on_chain = vec![false; raw.len()];
    let mut total = 0u64;
    let mut chain = Vec::new();
    for start in 0..raw.len() {
        // Collect the unbuilt ancestors of `start`, nearest first, then build them top-down.
        let mut at = start;
        while paths[at].is_none() {
            ensure!(!on_chain[at], "BOM: parent ids form a cycle at {}", raw[at].name);
            on_chain[at] = true;
            chain.push(at);
            // Every level adds at least "/x", so a deeper path cannot fit PATH_MAX.
            ensure!(
                chain.len() <= MAX_PATH_BYTES / 2,
                "BOM: {} is nested deeper than a {MAX_PATH_BYTES}-byte path allows",
                raw[start].name
            );
            let parent = raw[at].parent;
            if parent == 0 {
                break;
            }
            at = *index_of
                .get(&parent)
                .with_context(|| format!("BOM: {} has unknown parent id {parent}", raw[at].name))?;
        }
        while let Some(index) = chain.pop() {
            let path = match raw[index].parent {
                0 => raw[index].name.clone(),
                parent => {
                    let parent_path = paths[index_of[&parent]].as_deref().unwrap_or_default();
                    format!("{parent_path}/{}", raw[index].name)
                }
            };
            ensure!(
                path.len() <= MAX_PATH_BYTES,
                "BOM: a path of {} bytes exceeds the limit of {MAX_PATH_BYTES}",
                path.len()
            );
            total += path.len() as u64;
            ensure!(
                total <= MAX_LISTING_BYTES,
                "BOM: paths exceed the limit of {MAX_LISTING_BYTES} bytes in total"
            );
            paths[index] = Some(path);
        }
    }
    Ok(raw
        .into_iter()
        .zip(paths)
        .map(|(path, built)| BomRecord {
            path: built.unwrap_or_default(),
            ..path.record
        })
        .collect())
}

struct ParsedBom<'a> {
    data: &'a [u8],
    /// (offset, length) per block index.
    table: Vec<(u32, u32)>,
    vars: Vec<(String, u32)>,
}

impl<'a> ParsedBom<'a> {
    fn parse(data: &'a [u8]) -> Result<Self> {
        ensure!(
            data.get(..8) == Some(b"BOMStore"),
            "not a BOM (no BOMStore magic)"
        );
        let index = slice(data, be32(data, 16)?, be32(data, 20)?)?;
        let count = be32(index, 0)? as usize;
        ensure!(count <= index.len() / 8, "BOM: block table claims {count} blocks");
        let table = (0..count)
            .map(|i| Ok((be32(index, 4 + 8 * i)?, be32(index, 8 + 8 * i)?)))
            .collect::<Result<_>>()?;
        let var_data = slice(data, be32(data, 24)?, be32(data, 28)?)?;
        let mut vars = Vec::new();
        let mut at = 4;
        for _ in 0..be32(var_data, 0)? {
            let block = be32(var_data, at)?;
            let len = usize::from(*var_data.get(at + 4).context("BOM: variables truncated")?);
            let name = var_data
                .get(at + 5..at + 5 + len)
                .context("BOM: variables truncated")?;
            vars.push((String::from_utf8_lossy(name).into_owned(), block));
            at += 5 + len;
        }
        Ok(Self { data, table, vars })
    }

    fn var(&self, name: &str) -> Result<&'a [u8]> {
        let (_, block) = self
            .vars
            .iter()
            .find(|(var, _)| var == name)
            .with_context(|| format!("BOM: no {name} variable"))?;
        self.block(*block)
    }

    fn block(&self, index: u32) -> Result<&'a [u8]> {
        let &(offset, length) = self
            .table
            .get(index as usize)
            .with_context(|| format!("BOM: no block {index}"))?;
        ensure!(index != 0, "BOM: reference to the null block");
        slice(self.data, offset, length)
    }
}

fn slice(data: &[u8], offset: u32, length: u32) -> Result<&[u8]> {
    let (offset, length) = (offset as usize, length as usize);
    match data.get(offset..offset.saturating_add(length)) {
        Some(slice) => Ok(slice),
        None => bail!(
            "BOM: range {offset}+{length} is outside the {}-byte file",
            data.len()
        ),
    }
}

fn be32(data: &[u8], at: usize) -> Result<u32> {
    let bytes = data
        .get(at..at + 4)
        .with_context(|| format!("BOM: truncated at offset {at}"))?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn be16(data: &[u8], at: usize) -> Result<u16> {
    let bytes = data
        .get(at..at + 2)
        .with_context(|| format!("BOM: truncated at offset {at}"))?;
    Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cksum(data: &[u8]) -> u32 {
        let mut sum = Cksum::new();
        sum.update(data);
        sum.finish()
    }

    #[test]
    fn cksum_matches_posix_reference_values() {
        // Values printed by GNU coreutils `cksum`.
        assert_eq!(cksum(b""), 4_294_967_295);
        assert_eq!(cksum(b"123456789"), 930_766_865);
        // Slicing-by-8 and the byte-at-a-time tail agree across every split point.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = cksum(&data);
        for split in [1, 7, 8, 9, 500] {
            let mut sum = Cksum::new();
            sum.update(&data[..split]);
            sum.update(&data[split..]);
            assert_eq!(sum.finish(), whole, "split at {split}");
        }
    }

    #[test]
    fn written_bom_reads_back_in_parent_name_order() -> Result<()> {
        use super::super::Payload;
        let mut payload = Payload::new();
        payload.add_file("/b/z", b"zz".to_vec(), 0o644, 0, 0)?;
        payload.add_file("/a", b"a".to_vec(), 0o600, 501, 20)?;
        payload.add_symlink("/b/l", "z", 0, 0)?;
        let listing = super::super::cpio::write_payload(&payload, 0, &mut io::sink())?;
        let mut bom = Vec::new();
        write(&listing, 0, &mut bom)?;
        let records = read(&bom)?;
        let listing: Vec<_> = records
            .iter()
            .map(|r| (r.path.as_str(), r.mode, r.uid, r.size))
            .collect();
        assert_eq!(
            listing,
            [
                (".", 0o40755, 0, 0),
                ("./a", 0o100600, 501, 1),
                ("./b", 0o40755, 0, 0),
                ("./b/l", 0o120755, 0, 1),
                ("./b/z", 0o100644, 0, 2)
            ]
        );
        assert_eq!(records[3].link_target.as_deref(), Some("z"));
        assert_eq!(records[4].cksum, Some(cksum(b"zz")));
        Ok(())
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read(b"BOMStore").is_err());
        assert!(read(&[0xff; 64]).is_err());
        let mut header = b"BOMStore".to_vec();
        header.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0x20]);
        header.resize(40, 0);
        assert!(read(&header).is_err());
    }
}
