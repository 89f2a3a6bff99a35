//! Peak stack by painting: at start-up every free word between the end of the
//! static data and the current stack pointer is filled with a pattern; later,
//! the lowest word no longer holding it is how deep the stack has been.

use core::ptr::{addr_of, read_volatile, write_volatile};

const PAINT: u32 = 0xC0FF_EE55;

extern "C" {
    // cortex-m-rt's link.x: the start of the stack (its top: it grows down)
    // and the first free address after .bss (`__sheap`, where a heap would go).
    static _stack_start: u32;
    static __sheap: u32;
}

// Only the symbols' addresses are taken, never their values (no `unsafe` needed).
fn stack_top() -> usize {
    addr_of!(_stack_start) as usize
}

fn stack_limit() -> usize {
    addr_of!(__sheap) as usize
}

/// Paints the free stack below the caller. Must be called before anything
/// deep runs; it leaves 64 bytes below its own frame alone.
#[inline(never)]
pub(crate) fn paint() {
    let sp = cortex_m::register::msp::read() as usize - 64;
    let mut addr = (stack_limit() + 3) & !3;
    while addr < sp {
        // SAFETY: [__sheap, sp - 64) is RAM that nothing uses yet: above the
        // statics and below every live stack frame.
        unsafe { write_volatile(addr as *mut u32, PAINT) };
        addr += 4;
    }
}

/// The deepest the stack has been since [`paint`], in bytes from its top.
pub(crate) fn peak() -> usize {
    let mut addr = (stack_limit() + 3) & !3;
    // SAFETY: reads of the RAM painted above (or the live stack, which is
    // ordinary memory); nothing else writes it concurrently (no interrupts
    // but SysTick, whose frames are part of what this measures).
    while addr < stack_top() && unsafe { read_volatile(addr as *const u32) } == PAINT {
        addr += 4;
    }
    stack_top() - addr
}

/// The statics' RAM (.data and .bss, the heap's arena included).
pub(crate) fn static_bytes() -> usize {
    extern "C" {
        static __sdata: u32;
    }
    stack_limit() - addr_of!(__sdata) as usize
}
