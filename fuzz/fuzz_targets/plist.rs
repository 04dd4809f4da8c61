//! The configuration profile reader (`confine validate x.mobileconfig`): XML, binary and CMS-signed
//! property lists, checked against the payload catalog. Any input must give findings or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confine::profile::validate_bytes(data, None);
});
