//! An allocator for the broker process (and tests that feed it hostile input): the system
//! allocator, except that very large blocks are mapped with
//! `MAP_NORESERVE`.
//!
//! Why: the generated Kafka decoders size a `Vec` from the element count a client sends before
//! reading any element. A count of 2^31 asks for tens of GiB; the decode then fails at the first
//! missing element, but with the system allocator under Linux's heuristic overcommit the
//! request itself fails and aborts the process. Mapped with `MAP_NORESERVE` the reservation
//! only costs address space; pages are committed when touched, and a request can only touch
//! as many elements as its frame (bounded by `socket.request.max.bytes`) holds.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large are mapped directly.
pub const NORESERVE_BYTES_MIN: usize = 1 << 30;

pub struct NoReserveAlloc;

fn page_bytes() -> usize {
    4096
}

fn use_mmap(layout: &Layout) -> bool {
    layout.size() >= NORESERVE_BYTES_MIN && layout.align() <= page_bytes()
}

// SAFETY: every block is either from `System` (small) or from `mmap` (large, page aligned,
// at least `size` bytes); the size class decides which on both allocation and release, and
// `realloc` moves blocks across classes by copying.
unsafe impl GlobalAlloc for NoReserveAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !use_mmap(&layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if use_mmap(&layout) {
            // SAFETY: `ptr` came from the mmap above with this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if use_mmap(&layout) {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `layout.align()` and `new_size` form a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !use_mmap(&layout) && !use_mmap(&new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a fresh block of the new layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_reservation_only_takes_address_space() {
        // 64 GiB: more than the machine has.
        let layout = Layout::from_size_align(64 << 30, 8).expect("layout");
        // SAFETY: a non-zero layout; the block is written within bounds and released with the
        // same layout.
        unsafe {
            let p = NoReserveAlloc.alloc(layout);
            assert!(!p.is_null());
            p.write(1);
            *p.add((64 << 30) - 1) = 2;
            NoReserveAlloc.dealloc(p, layout);
        }
        let small = Layout::from_size_align(100, 8).expect("layout");
        // SAFETY: as above.
        unsafe {
            let p = NoReserveAlloc.alloc(small);
            assert!(!p.is_null());
            let p = NoReserveAlloc.realloc(p, small, 2 << 30);
            assert!(!p.is_null());
            NoReserveAlloc.dealloc(p, Layout::from_size_align(2 << 30, 8).expect("layout"));
        }
    }
}
