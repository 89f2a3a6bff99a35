//! The device-specific part of the vector table, as a device crate would
//! provide it: QEMU's mps2-an386 wires 32 external interrupts into its NVIC
//! (UARTs, timers, GPIO, Ethernet), and this firmware enables none of them
//! (it polls the UART), so each entry is cortex-m-rt's `DefaultHandler`.
//! Without a device crate, cortex-m-rt reserves all 240 entries ARMv7-M
//! allows: 832 bytes of flash that point nowhere on this board.

/// One entry: a handler's address.
#[repr(C)]
pub(crate) struct Vector {
    _handler: unsafe extern "C" fn(),
}

extern "C" {
    // cortex-m-rt's link.x: `PROVIDE(DefaultHandler = DefaultHandler_)`,
    // which loops (or is the firmware's own, if it defines one).
    fn DefaultHandler();
}

/// The board's interrupt count (QEMU's `num-irq` for mps2-an385/an386).
const INTERRUPTS: usize = 32;

/// Placed right after the 16 system exceptions by cortex-m-rt's link.x,
/// which asks for this name and this section when its `device` feature is on.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [Vector; INTERRUPTS] = [const {
    Vector {
        _handler: DefaultHandler,
    }
}; INTERRUPTS];
