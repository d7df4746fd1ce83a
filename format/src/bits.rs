//! The little-endian bit stream of FORMAT.md 5.1: element k occupies stream bits [k*b, (k+1)*b).

/// Bytes needed for `count` codes of `bits` bits, or `None` on overflow.
pub fn packed_len(count: u64, bits: u32) -> Option<u64> {
    count
        .checked_mul(u64::from(bits))?
        .checked_add(7)
        .map(|b| b / 8)
}

/// Appends codes (the low `bits` bits of each `u32`) to a bit stream.
pub struct BitWriter {
    bits: u32,
    bytes: Vec<u8>,
    acc: u64,
    filled: u32,
}

impl BitWriter {
    pub fn new(bits: u32, capacity_codes: usize) -> BitWriter {
        debug_assert!((1..=32).contains(&bits));
        BitWriter {
            bits,
            bytes: Vec::with_capacity(capacity_codes * bits as usize / 8 + 1),
            acc: 0,
            filled: 0,
        }
    }

    pub fn push(&mut self, code: u32) {
        let mask = if self.bits == 32 {
            u32::MAX
        } else {
            (1u32 << self.bits) - 1
        };
        self.acc |= u64::from(code & mask) << self.filled;
        self.filled += self.bits;
        while self.filled >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.filled -= 8;
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

/// Reads code `index` of `bits` bits from a stream. The caller guarantees the stream is long enough
/// (the reader validated the plane length); a short stream yields zero bits rather than a panic.
pub fn read_code(stream: &[u8], bits: u32, index: u64) -> u32 {
    debug_assert!((1..=32).contains(&bits), "codes are 1..=32 bits wide");
    let start_bit = index * u64::from(bits);
    let first = (start_bit / 8) as usize;
    let shift = (start_bit % 8) as u32;
    let mut word = [0u8; 8];
    let avail = stream.get(first..).unwrap_or(&[]);
    let n = avail.len().min(8);
    word[..n].copy_from_slice(&avail[..n]);
    let v = u64::from_le_bytes(word) >> shift;
    let mask = if bits == 32 {
        u64::from(u32::MAX)
    } else {
        (1u64 << bits) - 1
    };
    (v & mask) as u32
}

/// Sign-extends the low `bits` bits of `code`.
pub fn sign_extend(code: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    ((code << shift) as i32) >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_bit_order() {
        // 4-bit: element 0 is the low nibble of byte 0.
        let mut w = BitWriter::new(4, 3);
        for c in [0x1, 0x2, 0x3] {
            w.push(c);
        }
        assert_eq!(w.finish(), vec![0x21, 0x03]);
        // 6-bit: four elements fill three bytes.
        let mut w = BitWriter::new(6, 4);
        for c in [0b000001, 0b000010, 0b000011, 0b111111] {
            w.push(c);
        }
        // stream: 000001 | 000010 | 000011 | 111111 (LSB first)
        assert_eq!(w.finish(), vec![0b1000_0001, 0b0011_0000, 0b1111_1100]);
    }

    #[test]
    fn round_trip_all_widths() {
        for bits in 1..=32u32 {
            let mask = if bits == 32 {
                u32::MAX
            } else {
                (1 << bits) - 1
            };
            let codes: Vec<u32> = (0..77u32)
                .map(|i| i.wrapping_mul(2_654_435_761) & mask)
                .collect();
            let mut w = BitWriter::new(bits, codes.len());
            codes.iter().for_each(|&c| w.push(c));
            let stream = w.finish();
            assert_eq!(stream.len() as u64, packed_len(77, bits).unwrap());
            for (i, &c) in codes.iter().enumerate() {
                assert_eq!(
                    read_code(&stream, bits, i as u64),
                    c,
                    "bits {bits} index {i}"
                );
            }
        }
    }

    #[test]
    fn sign_extension() {
        assert_eq!(sign_extend(0xF, 4), -1);
        assert_eq!(sign_extend(0x8, 4), -8);
        assert_eq!(sign_extend(0x7, 4), 7);
        assert_eq!(sign_extend(0x80, 8), -128);
        assert_eq!(sign_extend(0xFFFF_FFFF, 32), -1);
    }
}
