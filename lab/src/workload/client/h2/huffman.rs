//! HPACK's Huffman code (RFC 7541, Appendix B), decoding only. The code is canonical, so the
//! code length of each symbol defines it completely.

use anyhow::bail;

/// Code length in bits of each symbol: bytes 0–255, then end-of-string (256).
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

/// The end-of-string symbol, which must never appear in a string.
const EOS: u16 = 256;
/// The longest code.
const MAX_LENGTH: usize = 30;

/// The canonical code, arranged for decoding: for each length, the first code of that
/// length, how many codes have it, and where their symbols start in `symbols`.
struct CanonicalCode {
    first: [u32; MAX_LENGTH + 1],
    count: [u32; MAX_LENGTH + 1],
    start: [u16; MAX_LENGTH + 1],
    symbols: [u16; 257],
}

/// The code, built at compile time from the lengths.
static CODE: CanonicalCode = canonical_code();

/// Orders symbols by (length, value) and numbers the codes as RFC 7541's canonical table does.
const fn canonical_code() -> CanonicalCode {
    let mut code = CanonicalCode {
        first: [0; MAX_LENGTH + 1],
        count: [0; MAX_LENGTH + 1],
        start: [0; MAX_LENGTH + 1],
        symbols: [0; 257],
    };
    let mut symbol = 0;
    while symbol < CODE_LENGTHS.len() {
        code.count[CODE_LENGTHS[symbol] as usize] += 1;
        symbol += 1;
    }
    let mut next_code = 0;
    let mut placed: u16 = 0;
    let mut length = 1;
    while length <= MAX_LENGTH {
        next_code = (next_code + code.count[length - 1]) << 1;
        code.first[length] = next_code;
        code.start[length] = placed;
        let mut symbol = 0;
        while symbol < CODE_LENGTHS.len() {
            if CODE_LENGTHS[symbol] as usize == length {
                code.symbols[placed as usize] = symbol as u16;
                placed += 1;
            }
            symbol += 1;
        }
        length += 1;
    }
    code
}

/// Decodes a Huffman-coded string; the padding must be the high bits of end-of-string.
pub(super) fn decode(coded: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut decoded = Vec::with_capacity(coded.len() * 8 / 5);
    let mut bits: u32 = 0;
    let mut length = 0;
    for byte in coded {
        for shift in (0..8).rev() {
            bits = (bits << 1) | u32::from((byte >> shift) & 1);
            length += 1;
            let offset = bits.wrapping_sub(CODE.first[length]);
            if bits >= CODE.first[length] && offset < CODE.count[length] {
                let symbol = CODE.symbols[(u32::from(CODE.start[length]) + offset) as usize];
                if symbol == EOS {
                    bail!("Huffman string contains end-of-string");
                }
                decoded.push(symbol as u8);
                bits = 0;
                length = 0;
            } else if length == MAX_LENGTH {
                bail!("invalid Huffman code");
            }
        }
    }
    if length > 7 || bits != (1 << length) - 1 {
        bail!("Huffman string has invalid padding");
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16))
            .collect::<Result<_, _>>()
            .expect("hex")
    }

    #[test]
    fn decodes_the_rfc_7541_examples() {
        // RFC 7541 C.4 and C.6.
        let cases = [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
        ];
        for (coded, text) in cases {
            assert_eq!(decode(&hex(coded)).expect(text), text.as_bytes());
        }
    }

    #[test]
    fn the_first_codes_of_each_length_follow_the_rfc_table() {
        // '0' = 00000 (5 bits), ' ' = 010100 (6), ':' = 1011100 (7), '&' = 11111000 (8).
        let symbol_at = |length: usize, code: u32| {
            CODE.symbols[(u32::from(CODE.start[length]) + code - CODE.first[length]) as usize]
        };
        assert_eq!(symbol_at(5, 0b00000), u16::from(b'0'));
        assert_eq!(symbol_at(6, 0b010100), u16::from(b' '));
        assert_eq!(symbol_at(7, 0b1011100), u16::from(b':'));
        assert_eq!(symbol_at(8, 0b11111000), u16::from(b'&'));
        assert_eq!(symbol_at(30, 0x3fff_ffff), EOS);
    }

    #[test]
    fn refuses_bad_padding_and_end_of_string() {
        // "0" is 00000; padding with zeros instead of ones.
        assert!(decode(&[0b0000_0000]).is_err());
        assert_eq!(decode(&[0b0000_0111]).expect("padded with ones"), b"0");
        // Eight bits of padding are more than a partial symbol.
        assert!(decode(&[0b0000_0111, 0xff]).is_err());
        // End-of-string spelt out: thirty ones.
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
