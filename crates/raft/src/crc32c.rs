//! CRC-32C (Castagnoli), the checksum of snapshots and log records. No dependency: the CPU's own
//! instruction where there is one (SSE 4.2 on x86-64: 8 bytes per instruction, about 20× the table
//! below, which matters for the snapshot of a large store), a byte-at-a-time table elsewhere. Both
//! are pinned by the standard check value and checked against each other.

const POLYNOMIAL: u32 = 0x82f6_3b78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLYNOMIAL } else { crc >> 1 };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2, checked just above.
        return unsafe { hardware(bytes) };
    }
    software(bytes)
}

fn software(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn hardware(bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut words = bytes.chunks_exact(8);
    let mut crc = u64::from(!0u32);
    for word in &mut words {
        if let Some(word) = word.first_chunk::<8>() {
            crc = _mm_crc32_u64(crc, u64::from_le_bytes(*word));
        }
    }
    let crc = words.remainder().iter().fold(crc as u32, |crc, &byte| _mm_crc32_u8(crc, byte));
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value() {
        // The check value of CRC-32C over the ASCII digits 1..9 (RFC 3720, appendix B.4).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(software(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn the_instruction_and_the_table_agree_on_every_length_and_alignment() {
        let data: Vec<u8> = (0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(crc32c(&data[start..end]), software(&data[start..end]), "bytes {start}..{end}");
            }
        }
    }
}
