//! The global allocator: `embedded-alloc`'s linked-list heap over a static
//! arena, wrapped to count the bytes in use and their peak (the SDK and the
//! core allocate handshake messages and records through `alloc`).

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// The arena: far more than the handshake needs, so the peak measured is the
/// SDK's, not the arena's limit.
pub(crate) const ARENA_BYTES: usize = 32 * 1024;

/// A heap that remembers how much it ever had out at once.
pub(crate) struct CountingHeap {
    heap: LlffHeap,
    in_use: AtomicUsize,
    peak: AtomicUsize,
}

impl CountingHeap {
    /// An empty heap; [`init`](Self::init) gives it its arena.
    pub(crate) const fn empty() -> Self {
        Self {
            heap: LlffHeap::empty(),
            in_use: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Hands the static arena to the heap. Call once, before any allocation.
    pub(crate) fn init(&self) {
        static mut ARENA: [MaybeUninit<u8>; ARENA_BYTES] = [MaybeUninit::uninit(); ARENA_BYTES];
        // SAFETY: called once at start-up (main's first lines), so the arena
        // is handed over once and nothing else refers to it.
        unsafe {
            self.heap
                .init(core::ptr::addr_of_mut!(ARENA) as usize, ARENA_BYTES)
        }
    }

    /// The most bytes allocated at once so far (requested sizes, without the
    /// allocator's own bookkeeping).
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded to the inner allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { self.heap.alloc(layout) };
        if !ptr.is_null() {
            let now = self.in_use.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}
