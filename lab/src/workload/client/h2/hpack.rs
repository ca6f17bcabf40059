//! HPACK header compression (RFC 7541) as this client needs it: requests go out as plain
//! literals, so the encoder keeps no state; answers are decoded in full (static and dynamic
//! tables, Huffman strings), since servers use all of it.

use std::collections::VecDeque;

use anyhow::{Context, anyhow, bail};

use super::{super::Fields, huffman};

/// The decoder's table size, the protocol's default, which this client never changes.
const TABLE_SIZE_LIMIT: usize = 4096;
/// Bytes each table entry costs beyond its name and value.
const ENTRY_OVERHEAD: usize = 32;

/// RFC 7541 Appendix A: the static table, indices 1 to 61.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Encodes fields as literals without indexing, new names, no Huffman coding.
pub(super) fn encode(fields: &Fields, block: &mut Vec<u8>) {
    for (name, value) in fields {
        block.push(0);
        put_string(block, name.to_ascii_lowercase().as_bytes());
        put_string(block, value.as_bytes());
    }
}

/// A string literal: length (no Huffman flag) then the bytes.
fn put_string(block: &mut Vec<u8>, text: &[u8]) {
    put_integer(block, 0, 7, text.len());
    block.extend_from_slice(text);
}

/// An integer with an N-bit prefix, the first byte's high bits set to `flags`.
fn put_integer(block: &mut Vec<u8>, flags: u8, prefix_bits: u32, value: usize) {
    let limit = (1_usize << prefix_bits) - 1;
    if value < limit {
        block.push(flags | value as u8);
        return;
    }
    block.push(flags | limit as u8);
    let mut rest = value - limit;
    while rest >= 0x80 {
        block.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    block.push(rest as u8);
}

/// The decoding side of one connection: its dynamic table.
#[derive(Debug)]
pub(super) struct Decoder {
    table: VecDeque<(String, String)>,
    table_bytes: usize,
    max_table_bytes: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            table: VecDeque::new(),
            table_bytes: 0,
            max_table_bytes: TABLE_SIZE_LIMIT,
        }
    }
}

impl Decoder {
    /// Decodes one complete header block.
    pub(super) fn decode(&mut self, mut block: &[u8]) -> anyhow::Result<Fields> {
        let mut fields = Vec::new();
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                let index = read_integer(&mut block, 7)?;
                fields.push(self.entry(index)?);
            } else if first & 0x40 != 0 {
                let field = self.literal(&mut block, 6)?;
                self.insert(field.clone());
                fields.push(field);
            } else if first & 0x20 != 0 {
                let size = read_integer(&mut block, 5)?;
                if size > TABLE_SIZE_LIMIT {
                    bail!("HPACK table size {size} is over the {TABLE_SIZE_LIMIT} allowed");
                }
                self.max_table_bytes = size;
                self.evict();
            } else {
                // Literal without indexing (0000) or never indexed (0001).
                fields.push(self.literal(&mut block, 4)?);
            }
        }
        Ok(fields)
    }

    /// A literal field whose name is a table index (or new, index 0) and whose value follows.
    fn literal(&self, block: &mut &[u8], prefix_bits: u32) -> anyhow::Result<(String, String)> {
        let name = match read_integer(block, prefix_bits)? {
            0 => read_string(block)?,
            index => self.entry(index)?.0,
        };
        Ok((name, read_string(block)?))
    }

    /// The field at `index`: static entries first, then the dynamic table, newest first.
    fn entry(&self, index: usize) -> anyhow::Result<(String, String)> {
        let field = match index {
            0 => None,
            1..=61 => {
                let (name, value) = STATIC_TABLE[index - 1];
                Some((name.to_owned(), value.to_owned()))
            }
            _ => self.table.get(index - 62).cloned(),
        };
        field.ok_or_else(|| anyhow!("HPACK index {index} names no table entry"))
    }

    /// Adds a field to the dynamic table, evicting the oldest to make room.
    fn insert(&mut self, field: (String, String)) {
        let bytes = ENTRY_OVERHEAD + field.0.len() + field.1.len();
        if bytes > self.max_table_bytes {
            self.table.clear();
            self.table_bytes = 0;
            return;
        }
        self.table_bytes += bytes;
        self.table.push_front(field);
        self.evict();
    }

    /// Drops the oldest entries until the table fits its size.
    fn evict(&mut self) {
        while self.table_bytes > self.max_table_bytes {
            let Some((name, value)) = self.table.pop_back() else {
                break;
            };
            self.table_bytes -= ENTRY_OVERHEAD + name.len() + value.len();
        }
    }
}

/// An integer with an N-bit prefix (RFC 7541 §5.1).
fn read_integer(block: &mut &[u8], prefix_bits: u32) -> anyhow::Result<usize> {
    let limit = (1_usize << prefix_bits) - 1;
    let (&first, rest) = block
        .split_first()
        .context("HPACK block ends inside an integer")?;
    *block = rest;
    let mut value = usize::from(first) & limit;
    if value < limit {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let (&byte, rest) = block
            .split_first()
            .context("HPACK block ends inside an integer")?;
        *block = rest;
        if shift > 28 {
            bail!("HPACK integer is too large");
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// A string literal, Huffman-decoded when flagged (RFC 7541 §5.2).
fn read_string(block: &mut &[u8]) -> anyhow::Result<String> {
    let huffman_coded = block.first().is_some_and(|first| first & 0x80 != 0);
    let length = read_integer(block, 7)?;
    if block.len() < length {
        bail!("HPACK block ends inside a string");
    }
    let (bytes, rest) = block.split_at(length);
    *block = rest;
    let text = if huffman_coded {
        huffman::decode(bytes)?
    } else {
        bytes.to_vec()
    };
    Ok(String::from_utf8_lossy(&text).into_owned())
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

    fn owned(fields: &[(&str, &str)]) -> Fields {
        fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn decodes_the_rfc_7541_request_sequence_with_huffman() {
        // RFC 7541 C.4: three requests on one connection, sharing the dynamic table.
        let mut decoder = Decoder::default();
        let first = decoder
            .decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"))
            .expect("first");
        assert_eq!(
            first,
            owned(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        let second = decoder
            .decode(&hex("8286 84be 5886 a8eb 1064 9cbf"))
            .expect("second");
        assert_eq!(second[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        let third = decoder
            .decode(&hex(
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ))
            .expect("third");
        assert_eq!(
            third,
            owned(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
        assert_eq!(decoder.table_bytes, 164);
    }

    #[test]
    fn evicts_the_oldest_entries_when_the_table_shrinks() {
        // RFC 7541 C.5.1-C.5.2 with a 256-byte table: the second response evicts the first entry.
        let mut decoder = Decoder::default();
        let shrink = [0x3f, 0xe1, 0x01]; // table size update to 256
        let mut first = shrink.to_vec();
        first.extend(hex(
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
             6c65 2e63 6f6d",
        ));
        let fields = decoder.decode(&first).expect("first");
        assert_eq!(fields[0], (":status".into(), "302".into()));
        assert_eq!(decoder.table_bytes, 222);
        let second = decoder.decode(&hex("4803 3330 37c1 c0bf")).expect("second");
        assert_eq!(second[0], (":status".into(), "307".into()));
        assert_eq!(second[1], ("cache-control".into(), "private".into()));
        assert_eq!(
            second[3],
            ("location".into(), "https://www.example.com".into())
        );
        assert_eq!(decoder.table.len(), 4);
        assert_eq!(decoder.table_bytes, 222);
    }

    #[test]
    fn encoded_literals_decode_to_the_same_fields() {
        let long_value = "v".repeat(300);
        let fields = owned(&[
            (":path", "/mesh.lab.Echo/Echo"),
            ("X-Canary", "1"),
            ("x-long", long_value.as_str()),
        ]);
        let mut block = Vec::new();
        encode(&fields, &mut block);
        let decoded = Decoder::default().decode(&block).expect("decode");
        assert_eq!(decoded[1], ("x-canary".into(), "1".into()));
        assert_eq!(decoded[2].1.len(), 300);
    }

    #[test]
    fn refuses_unknown_indices_truncated_blocks_and_oversized_tables() {
        assert!(Decoder::default().decode(&[0x80]).is_err()); // index 0
        assert!(Decoder::default().decode(&[0xbe]).is_err()); // index 62, table empty
        assert!(Decoder::default().decode(&[0x40, 0x05, b'a']).is_err());
        assert!(Decoder::default().decode(&[0x3f, 0xe2, 0x7f]).is_err()); // size 16_385
    }
}
