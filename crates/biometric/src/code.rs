//! The concatenated code: Reed-Solomon over bytes outside, the Hadamard code
//! RM(1,7) inside, its blocks interleaved across the template.

use reed_solomon::{Decoder, Encoder};
use zeroize::{Zeroize, Zeroizing};

use crate::{TEMPLATE_BITS, TEMPLATE_BYTES, TEMPLATE_COLUMNS, TEMPLATE_ROWS};

/// Inner blocks, one per Reed-Solomon symbol.
pub(crate) const BLOCKS: usize = 32;
/// Bits per inner block.
pub(crate) const INNER_BITS: usize = TEMPLATE_BITS / BLOCKS;
/// Reed-Solomon message bytes.
pub(crate) const MESSAGE_BYTES: usize = 20;
/// Reed-Solomon parity bytes.
pub(crate) const PARITY_BYTES: usize = BLOCKS - MESSAGE_BYTES;

/// Bits of one block in each row.
const PER_ROW: usize = TEMPLATE_COLUMNS / BLOCKS;
/// Column shift per row; 7 keeps any two bits of one block at least √32 ≈ 5.7
/// cells apart (the best any shift achieves on this grid), so neighbouring bits,
/// which agree and fail together, land in different blocks.
const SKEW: usize = 7;

const _: () = assert!(INNER_BITS == 128 && PER_ROW * TEMPLATE_ROWS == INNER_BITS);

/// The interleaver: `POSITIONS[b][i]` is the template bit carrying bit `i` of block `b`.
///
/// Block `b` takes, in row `r`, the columns `b + 7r + 32k (mod 256)` for
/// `k = 0..8`: every row and every angular sector of 32 columns holds the same
/// number of bits of each block, so an occlusion (a run of rows or columns) is
/// spread evenly over all blocks instead of wiping some out.
static POSITIONS: [[u16; INNER_BITS]; BLOCKS] = positions();

const fn positions() -> [[u16; INNER_BITS]; BLOCKS] {
    let mut table = [[0u16; INNER_BITS]; BLOCKS];
    let mut b = 0;
    while b < BLOCKS {
        let mut i = 0;
        while i < INNER_BITS {
            let row = i / PER_ROW;
            let column = (b + BLOCKS * (i % PER_ROW) + SKEW * row) % TEMPLATE_COLUMNS;
            table[b][i] = (row * TEMPLATE_COLUMNS + column) as u16;
            i += 1;
        }
        b += 1;
    }
    table
}

fn bit(bytes: &[u8; TEMPLATE_BYTES], index: usize) -> u8 {
    (bytes[index >> 3] >> (index & 7)) & 1
}

/// Bit `i` of the RM(1,7) codeword for `symbol`: the linear function
/// `<symbol & 0x7f, i>` over GF(2), complemented when the symbol's top bit is set.
fn hadamard_bit(symbol: u8, i: usize) -> u8 {
    let linear = ((symbol & 0x7f) as usize & i).count_ones() as u8 & 1;
    linear ^ (symbol >> 7)
}

/// XORs the concatenated codeword for `message` into `word`.
pub(crate) fn xor_codeword(message: &[u8; MESSAGE_BYTES], word: &mut [u8; TEMPLATE_BYTES]) {
    let mut outer = Encoder::new(PARITY_BYTES).encode(message);
    for (block, positions) in POSITIONS.iter().enumerate() {
        let symbol = outer[block];
        for (i, &position) in positions.iter().enumerate() {
            let position = position as usize;
            word[position >> 3] ^= hadamard_bit(symbol, i) << (position & 7);
        }
    }
    outer.zeroize();
}

/// Maximum-likelihood decoding of one RM(1,7) block by the fast Hadamard
/// transform: the symbol whose codeword is nearest to the block's bits.
///
/// At 25 % independent bit errors a block is decoded wrongly about once in two
/// thousand: half the minimum distance (31 errors, 24 %) is no limit for it.
fn decode_block(word: &[u8; TEMPLATE_BYTES], positions: &[u16; INNER_BITS]) -> u8 {
    let mut spectrum = [0i32; INNER_BITS];
    for (value, &position) in spectrum.iter_mut().zip(positions) {
        *value = 1 - 2 * i32::from(bit(word, position as usize));
    }
    let mut half = 1;
    while half < INNER_BITS {
        for start in (0..INNER_BITS).step_by(2 * half) {
            for j in start..start + half {
                let (a, b) = (spectrum[j], spectrum[j + half]);
                spectrum[j] = a + b;
                spectrum[j + half] = a - b;
            }
        }
        half *= 2;
    }
    let (mut best, mut best_abs) = (0usize, -1i32);
    for (a, value) in spectrum.iter().enumerate() {
        if value.abs() > best_abs {
            best = a;
            best_abs = value.abs();
        }
    }
    let complement = u8::from(spectrum[best] < 0);
    spectrum.zeroize();
    best as u8 | complement << 7
}

/// Decodes a noisy codeword (reading XOR offset) to the Reed-Solomon message,
/// or `None` when Reed-Solomon decoding fails.
pub(crate) fn decode(word: &[u8; TEMPLATE_BYTES]) -> Option<Zeroizing<[u8; MESSAGE_BYTES]>> {
    let mut symbols = Zeroizing::new([0u8; BLOCKS]);
    for (symbol, positions) in symbols.iter_mut().zip(POSITIONS.iter()) {
        *symbol = decode_block(word, positions);
    }
    let mut corrected = Decoder::new(PARITY_BYTES)
        .correct(&symbols[..], None)
        .ok()?;
    let mut message = Zeroizing::new([0u8; MESSAGE_BYTES]);
    message.copy_from_slice(corrected.data());
    corrected.zeroize();
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interleaver_is_a_permutation() {
        let mut seen = [false; TEMPLATE_BITS];
        for position in POSITIONS.iter().flatten() {
            assert!(!seen[*position as usize]);
            seen[*position as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn bits_of_one_block_are_far_apart() {
        for positions in &POSITIONS {
            for (n, &p) in positions.iter().enumerate() {
                for &q in &positions[n + 1..] {
                    let (p, q) = (p as i32, q as i32);
                    let rows = p / 256 - q / 256;
                    let columns = (p % 256 - q % 256).rem_euclid(256);
                    let columns = columns.min(256 - columns);
                    assert!(rows * rows + columns * columns >= 32, "{p} {q}");
                }
            }
        }
    }

    #[test]
    fn every_symbol_decodes_with_31_errors() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for symbol in 0..=255u8 {
            let mut word = [0u8; TEMPLATE_BYTES];
            for (i, &position) in POSITIONS[3].iter().enumerate() {
                let position = position as usize;
                word[position >> 3] |= hadamard_bit(symbol, i) << (position & 7);
            }
            // 31 distinct errors: below half the minimum distance (64).
            let mut flipped = [false; INNER_BITS];
            let mut count = 0;
            while count < 31 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng % INNER_BITS as u64) as usize;
                if !flipped[i] {
                    flipped[i] = true;
                    count += 1;
                    let position = POSITIONS[3][i] as usize;
                    word[position >> 3] ^= 1 << (position & 7);
                }
            }
            assert_eq!(decode_block(&word, &POSITIONS[3]), symbol);
        }
    }

    #[test]
    fn a_codeword_decodes_to_its_message() {
        let message: [u8; MESSAGE_BYTES] = core::array::from_fn(|i| (i * 37 + 5) as u8);
        let mut word = [0u8; TEMPLATE_BYTES];
        xor_codeword(&message, &mut word);
        assert_eq!(decode(&word).as_deref(), Some(&message));
    }
}
