//! libFuzzer entry point; the decoding, validation and invariants are in
//! `lapor_fuzz::push_batch` so the corpus also replays under plain `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lapor_fuzz::push_batch(data));
