#![no_main]
//! Fuzzes every decoder of untrusted bytes in the engine: batches, records, indexes, checkpoints.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::fuzzing::decode_everything(data);
});
