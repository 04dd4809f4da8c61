//! The fleet spec reader: parsing, the typing pass and every validation rule. Any input must end in a
//! spec or a `SpecError`, never a panic, within libFuzzer's time and memory limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = confine::spec::parse_and_validate(text, std::path::Path::new("fuzz.yaml"));
    }
});
