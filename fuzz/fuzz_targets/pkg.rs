//! The flat package readers (`confine inspect` and `confine verify`): xar, TOC, BOM, cpio, PackageInfo,
//! Distribution and signatures. They read from a path, so each input is written to a file first.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One file per fuzzing process, in memory when /dev/shm exists.
fn input_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from("/dev/shm");
        let dir = if dir.is_dir() { dir } else { std::env::temp_dir() };
        dir.join(format!("confine-fuzz-{}.pkg", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = input_path();
    std::fs::write(path, data).expect("write the fuzz input");
    let _ = confine::pkg::inspect(path);
    let _ = confine::verify::verify_file(path, None);
});
