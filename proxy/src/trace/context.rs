//! Trace context in request headers: W3C Trace Context (`traceparent`) and B3 (the multi-header
//! `x-b3-*` form and the single `b3` header), read from a request and written back with this
//! proxy's span as the parent of the next hop.

use http::{HeaderMap, HeaderName, HeaderValue};

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static B3: HeaderName = HeaderName::from_static("b3");
static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Which header form the context came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `traceparent`.
    W3c,
    /// `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`.
    B3Multi,
    /// `b3: {trace}-{span}-{sampled}`.
    B3Single,
}

/// The trace a request belongs to and the span that sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The sender's span.
    pub span_id: [u8; 8],
    /// Whether the trace is recorded.
    pub sampled: bool,
    /// The form it came in.
    pub format: Format,
}

impl Context {
    /// The context in `headers`: `traceparent` first, then B3; `None` when there is none or it
    /// does not parse (a new trace then starts).
    pub fn extract(headers: &HeaderMap) -> Option<Context> {
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(parent) = text(&TRACEPARENT).and_then(parse_traceparent) {
            return Some(parent);
        }
        if let (Some(trace), Some(span)) = (text(&B3_TRACE_ID), text(&B3_SPAN_ID)) {
            let sampled = text(&B3_SAMPLED).map(|s| s == "1" || s == "true");
            let debug = text(&B3_FLAGS) == Some("1");
            return Some(Context {
                trace_id: trace_id(trace)?,
                span_id: hex_array(span)?,
                sampled: debug || sampled.unwrap_or(true),
                format: Format::B3Multi,
            });
        }
        let single = text(&B3)?;
        let mut parts = single.split('-');
        let (trace, span) = (parts.next()?, parts.next()?);
        let sampled = parts.next().is_none_or(|s| s == "1" || s == "d");
        Some(Context {
            trace_id: trace_id(trace)?,
            span_id: hex_array(span)?,
            sampled,
            format: Format::B3Single,
        })
    }

    /// Writes the context into `headers` with `span_id` as the sender: always `traceparent`,
    /// and the B3 form it came in, so apps that read B3 keep working.
    pub fn inject(&self, span_id: [u8; 8], headers: &mut HeaderMap) {
        let flag = if self.sampled { "1" } else { "0" };
        let mut set = |name: &HeaderName, value: String| {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(name.clone(), value);
            }
        };
        // One allocation for the header every request gets: it is on every request's path.
        let mut parent = String::with_capacity(55);
        parent.push_str("00-");
        push_hex(&mut parent, &self.trace_id);
        parent.push('-');
        push_hex(&mut parent, &span_id);
        parent.push_str("-0");
        parent.push_str(flag);
        set(&TRACEPARENT, parent);
        match self.format {
            Format::W3c => {}
            Format::B3Multi => {
                set(&B3_TRACE_ID, hex(&self.trace_id));
                set(&B3_SPAN_ID, hex(&span_id));
                set(&B3_PARENT_SPAN_ID, hex(&self.span_id));
                set(&B3_SAMPLED, flag.to_owned());
            }
            Format::B3Single => {
                let (trace, span) = (hex(&self.trace_id), hex(&span_id));
                set(&B3, format!("{trace}-{span}-{flag}"));
            }
        }
    }
}

fn parse_traceparent(text: &str) -> Option<Context> {
    let mut parts = text.trim().split('-');
    let version = parts.next()?;
    let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let trace_id: [u8; 16] = hex_array(trace)?;
    let span_id: [u8; 8] = hex_array(span)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    let flags = u8::from_str_radix(flags.get(..2)?, 16).ok()?;
    Some(Context {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
        format: Format::W3c,
    })
}

/// A B3 trace id: 32 hex digits, or 16 (the high half zero).
fn trace_id(text: &str) -> Option<[u8; 16]> {
    match text.len() {
        32 => hex_array(text),
        16 => {
            let low: [u8; 8] = hex_array(text)?;
            let mut id = [0; 16];
            id[8..].copy_from_slice(&low);
            Some(id)
        }
        _ => None,
    }
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 * bytes.len());
    push_hex(&mut text, bytes);
    text
}

/// Appends `bytes` in lowercase hex to `text`.
fn push_hex(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        (pairs.iter())
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn traceparent_is_read_and_written_with_the_new_parent() {
        let mut map = headers(&[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )]);
        let context = Context::extract(&map).expect("context");
        assert!(context.sampled);
        assert_eq!(hex(&context.trace_id), "0af7651916cd43dd8448eb211c80319c");
        context.inject([1, 2, 3, 4, 5, 6, 7, 8], &mut map);
        assert_eq!(
            map["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-0102030405060708-01"
        );
    }

    #[test]
    fn b3_in_either_form_is_kept_in_that_form() {
        let mut multi = headers(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "0"),
        ]);
        let context = Context::extract(&multi).expect("b3");
        assert!(!context.sampled);
        assert_eq!(hex(&context.trace_id), "0000000000000000463ac35c9f6413ad");
        context.inject([9; 8], &mut multi);
        assert_eq!(multi["x-b3-spanid"], "0909090909090909");
        assert_eq!(multi["x-b3-parentspanid"], "a2fb4a1d1a96d312");
        assert!(multi.contains_key("traceparent"));

        let mut single = headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
        let context = Context::extract(&single).expect("b3 single");
        assert!(context.sampled);
        context.inject([1; 8], &mut single);
        assert_eq!(
            single["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-0101010101010101-1"
        );
    }

    #[test]
    fn malformed_context_starts_a_new_trace() {
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",
            "00-0af7651916cd43dd8448eb211c8031zz-b7ad6b7169203331-01",
        ] {
            let map: HeaderMap = [(TRACEPARENT.clone(), HeaderValue::from_static(bad))]
                .into_iter()
                .collect();
            assert_eq!(Context::extract(&map), None, "{bad}");
        }
    }
}
