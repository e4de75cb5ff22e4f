//! Lowercase hex for W3C ids and `traceparent`: encoding into a caller's buffer, strict
//! decoding, and writing to a formatter. Knows nothing of ids or headers.

use std::fmt;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Every byte's two lowercase hex digits: one lookup per byte rather than one per digit.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0x0f]];
        i += 1;
    }
    table
};

/// Writes `bytes` as lowercase hex into `out`, which holds two digits per byte.
pub(crate) fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), 2 * bytes.len());
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
}

/// Writes up to 16 `bytes` to `f` as lowercase hex, without allocating.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let mut buf = [0u8; 32];
    let out = buf.get_mut(..bytes.len() * 2).ok_or(fmt::Error)?;
    encode_hex(bytes, out);
    // The buffer only ever holds ASCII hex digits.
    f.write_str(std::str::from_utf8(out).map_err(|_| fmt::Error)?)
}

/// `text` as exactly `N` bytes of hex. Lowercase only: W3C Trace Context forbids uppercase in
/// `traceparent`.
pub(crate) fn decode_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(bytes: &[u8]) -> String {
        let mut out = vec![0u8; bytes.len() * 2];
        encode_hex(bytes, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_byte_encodes_as_two_lowercase_digits_and_decodes_back() {
        let all: Vec<u8> = (0..=255).collect();
        let text = encoded(&all);
        assert_eq!(&text[..6], "000102");
        assert_eq!(&text[text.len() - 4..], "feff");
        for byte in all {
            let pair = encoded(&[byte]);
            assert_eq!(pair, format!("{byte:02x}"));
            assert_eq!(decode_hex::<1>(pair.as_bytes()), Some([byte]));
        }
    }

    #[test]
    fn decoding_rejects_uppercase_other_characters_and_wrong_lengths() {
        assert_eq!(decode_hex::<2>(b"00ab"), Some([0x00, 0xab]));
        assert_eq!(decode_hex::<2>(b"00AB"), None);
        assert_eq!(decode_hex::<2>(b"00g0"), None);
        assert_eq!(decode_hex::<2>(b"00a"), None);
        assert_eq!(decode_hex::<2>(b"00abc0"), None);
    }

    #[test]
    fn a_formatter_gets_the_same_digits() {
        struct Hex<'a>(&'a [u8]);
        impl fmt::Display for Hex<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, self.0)
            }
        }
        let id = [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6];
        assert_eq!(Hex(&id).to_string(), encoded(&id));
        assert_eq!(Hex(&[]).to_string(), "");
    }
}
