//! The mps2-an386's UART0 (an Arm CMSDK APB UART) as the SDK's
//! [`Transport`]: each frame goes as a 2-byte big-endian length and its bytes.
//!
//! QEMU connects the UART to the host (`-serial tcp:...`), where the
//! responder reads and writes the same framing. A real wearable puts a BLE
//! L2CAP channel or its own radio here; the SDK sees only whole frames.

use core::ptr::{read_volatile, write_volatile};

use vitalgate_sdk::traits::{Transport, TransportError};

/// UART0 of the CMSDK peripherals on mps2-an385/an386.
const BASE: usize = 0x4000_4000;
const DATA: *mut u32 = BASE as *mut u32;
const STATE: *mut u32 = (BASE + 0x04) as *mut u32;
const CTRL: *mut u32 = (BASE + 0x08) as *mut u32;
const BAUDDIV: *mut u32 = (BASE + 0x10) as *mut u32;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_ENABLE: u32 = 1 << 0;
const CTRL_RX_ENABLE: u32 = 1 << 1;

/// The enabled UART. Only one exists ([`Uart::take`] is called once).
pub(crate) struct Uart {
    _private: (),
}

impl Uart {
    /// Enables transmit and receive. Call once: two owners of the same
    /// registers would interleave their frames.
    pub(crate) fn take() -> Self {
        // SAFETY: BAUDDIV and CTRL are registers of the CMSDK UART at its
        // documented address on this machine; volatile writes of valid values
        // (a divisor >= 16, the two enable bits) have no effect on memory.
        unsafe {
            write_volatile(BAUDDIV, 16);
            write_volatile(CTRL, CTRL_TX_ENABLE | CTRL_RX_ENABLE);
        }
        Self { _private: () }
    }

    fn write_byte(&mut self, byte: u8) {
        // SAFETY: reads of STATE and a write of DATA of the UART above,
        // volatile, with `&mut self` so no other code uses the UART meanwhile.
        unsafe {
            while read_volatile(STATE) & STATE_TX_FULL != 0 {}
            write_volatile(DATA, u32::from(byte));
        }
    }

    fn read_byte(&mut self) -> u8 {
        // SAFETY: as in `write_byte`; reading DATA clears RX_FULL.
        unsafe {
            while read_volatile(STATE) & STATE_RX_FULL == 0 {}
            read_volatile(DATA) as u8
        }
    }
}

impl Transport for Uart {
    fn send(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let len = u16::try_from(frame.len()).map_err(|_| TransportError::FrameTooLarge)?;
        for byte in len.to_be_bytes().into_iter().chain(frame.iter().copied()) {
            self.write_byte(byte);
        }
        Ok(())
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let len = usize::from(u16::from_be_bytes([self.read_byte(), self.read_byte()]));
        // Read the whole frame even when it is too large, so the stream stays in step.
        for i in 0..len {
            let byte = self.read_byte();
            if let Some(slot) = buf.get_mut(i) {
                *slot = byte;
            }
        }
        if len > buf.len() {
            return Err(TransportError::FrameTooLarge);
        }
        Ok(len)
    }
}
