//! What a user types or feeds: an inputs line in both formats, a `--range`
//! and a `--arg key=value`. Errors are fine; a panic is a bug.
#![no_main]

use brigade_client::inputs::item_of;
use brigade_client::{parse_kv, parse_range, InputsFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = item_of(data, InputsFormat::Text);
    let _ = item_of(data, InputsFormat::Jsonl);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_range(s);
        let _ = parse_kv(s);
    }
});
