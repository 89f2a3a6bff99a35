//! Counting what the handshake costs in the emulator.
//!
//! QEMU's mps2-an386 does not model the DWT cycle counter (its CYCCNT reads
//! 0; the firmware reports what it read, so this stays checked), but it does
//! model SysTick on the virtual clock. Run with `-icount shift=0` every
//! instruction advances that clock by exactly 1 ns, so SysTick ticks count
//! instructions at a fixed ratio, which [`calibrate`] measures on a loop of a
//! known number of instructions rather than assuming the board's clock.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{DCB, DWT, SYST};
use cortex_m_rt::exception;

const RELOAD: u32 = 0x00FF_FFFF;

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Starts SysTick from the core clock, wrapping (and counting wraps) every 2^24 ticks.
pub(crate) fn start(syst: &mut SYST, dcb: &mut DCB, dwt: &mut DWT) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // Clearing the counter leaves it at 0 until its first tick loads the
    // reload value, which is no wrap: count from there, not across it.
    while SYST::get_current() == 0 {}
    dcb.enable_trace();
    dwt.enable_cycle_counter();
}

/// Ticks since [`start`], as one 64-bit count.
pub(crate) fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            return u64::from(before) * u64::from(RELOAD + 1) + u64::from(RELOAD - current);
        }
    }
}

/// How many times SysTick has wrapped.
pub(crate) fn wraps() -> u32 {
    WRAPS.load(Ordering::Relaxed)
}

/// Ticks taken by a loop of two instructions per turn, and the turns.
pub(crate) fn calibrate() -> (u64, u64) {
    const TURNS: u32 = 1_000_000;
    let start = ticks();
    // SAFETY: a register-only countdown loop: `subs` and `bne`, two
    // instructions per turn, touching no memory.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) TURNS => _,
            options(nomem, nostack),
        );
    }
    (ticks().wrapping_sub(start), 2 * u64::from(TURNS))
}

/// What the DWT cycle counter reads (0 under QEMU, which does not model it).
pub(crate) fn dwt_cycles() -> u32 {
    DWT::cycle_count()
}
