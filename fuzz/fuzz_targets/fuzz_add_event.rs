//! libFuzzer entry point; the decoding, validation and invariants are in
//! `lapor_fuzz::add_event` so the corpus also replays under plain `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lapor_fuzz::add_event(data));
