#![no_main]
//! Fuzzes request decoding: any frame body through the header and body decoders of every
//! served API and version, without the broker's panic guard. It must return, never panic or
//! abort.
use libfuzzer_sys::fuzz_target;

// As in the broker: hostile element counts reserve address space, not memory.
#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

fuzz_target!(|data: &[u8]| {
    let _ = net::handlers::decode_request_unguarded(bytes::Bytes::copy_from_slice(data));
});
