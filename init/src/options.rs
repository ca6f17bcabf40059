//! What to capture: the raw settings (flags or environment variables, as text) and their
//! validated form. Every bad value is reported at once, each naming its flag, its variable and
//! the offending text.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

/// The proxy's uid: its own traffic is never captured.
pub const PROXY_UID: u32 = 1337;
/// The proxy's gid: its own traffic is never captured.
pub const PROXY_GID: u32 = 1337;
/// Where captured outbound connections are redirected.
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
/// Where captured inbound connections are redirected.
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
/// The proxy's health port (kubelet probes reach it directly).
pub const HEALTH_PORT: u16 = 15021;
/// The proxy's Prometheus port (scrapers reach it directly).
pub const METRICS_PORT: u16 = 15090;
/// Inbound ports never captured, whatever the options say: the proxy serves them itself.
pub const ALWAYS_EXCLUDED_INBOUND_PORTS: [u16; 2] = [HEALTH_PORT, METRICS_PORT];

/// A setting's flag and its environment twin, as named in errors and `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The command-line flag, e.g. `--inbound-ports`.
    pub flag: &'static str,
    /// The environment variable, e.g. `MESH_INBOUND_PORTS`.
    pub env: &'static str,
}

/// Inbound ports to capture: `*`, a list, or empty for none.
pub const INBOUND_PORTS: Setting = setting("--inbound-ports", "MESH_INBOUND_PORTS");
/// Inbound ports never captured (added to the proxy's own health and metrics ports).
pub const EXCLUDE_INBOUND_PORTS: Setting =
    setting("--exclude-inbound-ports", "MESH_EXCLUDE_INBOUND_PORTS");
/// Outbound destination ports never captured.
pub const EXCLUDE_OUTBOUND_PORTS: Setting =
    setting("--exclude-outbound-ports", "MESH_EXCLUDE_OUTBOUND_PORTS");
/// Outbound destination CIDRs never captured.
pub const EXCLUDE_OUTBOUND_CIDRS: Setting =
    setting("--exclude-outbound-cidrs", "MESH_EXCLUDE_OUTBOUND_CIDRS");
/// Outbound destination CIDRs to capture: `*`, a list, or empty for none.
pub const INCLUDE_OUTBOUND_CIDRS: Setting =
    setting("--include-outbound-cidrs", "MESH_INCLUDE_OUTBOUND_CIDRS");
/// The proxy's uid.
pub const PROXY_UID_SETTING: Setting = setting("--proxy-uid", "MESH_PROXY_UID");
/// The proxy's gid.
pub const PROXY_GID_SETTING: Setting = setting("--proxy-gid", "MESH_PROXY_GID");
/// The outbound capture port.
pub const OUTBOUND_PORT_SETTING: Setting =
    setting("--outbound-capture-port", "MESH_OUTBOUND_CAPTURE_PORT");
/// The inbound capture port.
pub const INBOUND_PORT_SETTING: Setting =
    setting("--inbound-capture-port", "MESH_INBOUND_CAPTURE_PORT");

const fn setting(flag: &'static str, env: &'static str) -> Setting {
    Setting { flag, env }
}

/// The settings as given, lists still comma-separated text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawOptions {
    /// `*`, a comma-separated port list, or empty.
    pub inbound_ports: String,
    /// Comma-separated ports.
    pub exclude_inbound_ports: String,
    /// Comma-separated ports.
    pub exclude_outbound_ports: String,
    /// Comma-separated CIDRs or addresses, IPv4 and IPv6 mixed.
    pub exclude_outbound_cidrs: String,
    /// `*`, comma-separated CIDRs or addresses, or empty.
    pub include_outbound_cidrs: String,
    /// The proxy's uid.
    pub proxy_uid: u32,
    /// The proxy's gid.
    pub proxy_gid: u32,
    /// Where outbound connections are redirected.
    pub outbound_capture_port: u16,
    /// Where inbound connections are redirected.
    pub inbound_capture_port: u16,
}

/// Which ports (or destinations) a capture applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection<T> {
    /// Everything (`*`).
    All,
    /// Only these; empty means nothing.
    Only(Vec<T>),
}

/// An IPv4 or IPv6 network, host bits cleared (as `iptables-save` prints it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Validated options: the only input of the rule set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Inbound destination ports captured.
    pub inbound_ports: Selection<u16>,
    /// Inbound ports never captured, the proxy's own first.
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound destination ports never captured.
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destinations never captured.
    pub exclude_outbound_cidrs: Vec<Cidr>,
    /// Outbound destinations captured.
    pub include_outbound_cidrs: Selection<Cidr>,
    /// The proxy's uid.
    pub proxy_uid: u32,
    /// The proxy's gid.
    pub proxy_gid: u32,
    /// Where outbound connections are redirected.
    pub outbound_capture_port: u16,
    /// Where inbound connections are redirected.
    pub inbound_capture_port: u16,
}

/// One bad value: which setting, what text, and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{} ({}): {value:?} {reason}", setting.flag, setting.env)]
pub struct OptionError {
    /// The setting the value came from.
    pub setting: Setting,
    /// The offending text (one list item, or the whole value).
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// Every bad value found in one pass.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub struct InvalidOptions(pub Vec<OptionError>);

// === impl RawOptions ===

impl Default for RawOptions {
    fn default() -> Self {
        Self {
            inbound_ports: "*".into(),
            exclude_inbound_ports: String::new(),
            exclude_outbound_ports: String::new(),
            exclude_outbound_cidrs: String::new(),
            include_outbound_cidrs: "*".into(),
            proxy_uid: PROXY_UID,
            proxy_gid: PROXY_GID,
            outbound_capture_port: OUTBOUND_CAPTURE_PORT,
            inbound_capture_port: INBOUND_CAPTURE_PORT,
        }
    }
}

impl RawOptions {
    /// Validates every setting; the error lists all bad values, not only the first.
    pub fn parse(&self) -> Result<Options, InvalidOptions> {
        let mut errors = Vec::new();
        let inbound_ports = selection(INBOUND_PORTS, &self.inbound_ports, parse_port, &mut errors);
        let mut exclude_inbound_ports = ALWAYS_EXCLUDED_INBOUND_PORTS.to_vec();
        exclude_inbound_ports.extend(list(
            EXCLUDE_INBOUND_PORTS,
            &self.exclude_inbound_ports,
            parse_port,
            &mut errors,
        ));
        let exclude_outbound_ports = list(
            EXCLUDE_OUTBOUND_PORTS,
            &self.exclude_outbound_ports,
            parse_port,
            &mut errors,
        );
        let exclude_outbound_cidrs = list(
            EXCLUDE_OUTBOUND_CIDRS,
            &self.exclude_outbound_cidrs,
            Cidr::parse,
            &mut errors,
        );
        let include_outbound_cidrs = selection(
            INCLUDE_OUTBOUND_CIDRS,
            &self.include_outbound_cidrs,
            Cidr::parse,
            &mut errors,
        );
        for (setting, port) in [
            (OUTBOUND_PORT_SETTING, self.outbound_capture_port),
            (INBOUND_PORT_SETTING, self.inbound_capture_port),
        ] {
            if port == 0 {
                errors.push(error(setting, "0", "is not a port (1-65535)"));
            }
        }
        if self.outbound_capture_port == self.inbound_capture_port {
            let value = self.inbound_capture_port.to_string();
            let reason = format!(
                "is also {}; the two must differ",
                OUTBOUND_PORT_SETTING.flag
            );
            errors.push(error(INBOUND_PORT_SETTING, &value, &reason));
        }
        if !errors.is_empty() {
            return Err(InvalidOptions(errors));
        }
        Ok(Options {
            inbound_ports,
            exclude_inbound_ports: dedup(exclude_inbound_ports),
            exclude_outbound_ports: dedup(exclude_outbound_ports),
            exclude_outbound_cidrs: dedup(exclude_outbound_cidrs),
            include_outbound_cidrs,
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid,
            outbound_capture_port: self.outbound_capture_port,
            inbound_capture_port: self.inbound_capture_port,
        })
    }
}

fn error(setting: Setting, value: &str, reason: &str) -> OptionError {
    OptionError {
        setting,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// `*` for all, otherwise a list (empty text: nothing).
fn selection<T: PartialEq>(
    setting: Setting,
    text: &str,
    parse: fn(&str) -> Result<T, String>,
    errors: &mut Vec<OptionError>,
) -> Selection<T> {
    if text.trim() == "*" {
        return Selection::All;
    }
    Selection::Only(dedup(list(setting, text, parse, errors)))
}

/// A comma-separated list; blank items (a trailing comma) are skipped.
fn list<T>(
    setting: Setting,
    text: &str,
    parse: fn(&str) -> Result<T, String>,
    errors: &mut Vec<OptionError>,
) -> Vec<T> {
    let mut items = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        match parse(item) {
            Ok(value) => items.push(value),
            Err(reason) => errors.push(error(setting, item, &reason)),
        }
    }
    items
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text == "*" {
        return Err("is only allowed alone, not in a list".into());
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err("is not a port (1-65535)".into()),
    }
}

/// Keeps the first of each value, in order.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

// === impl Options ===

impl Default for Options {
    /// What `RawOptions::default()` parses to (a unit test holds them together).
    fn default() -> Self {
        Self {
            inbound_ports: Selection::All,
            exclude_inbound_ports: ALWAYS_EXCLUDED_INBOUND_PORTS.to_vec(),
            exclude_outbound_ports: Vec::new(),
            exclude_outbound_cidrs: Vec::new(),
            include_outbound_cidrs: Selection::All,
            proxy_uid: PROXY_UID,
            proxy_gid: PROXY_GID,
            outbound_capture_port: OUTBOUND_CAPTURE_PORT,
            inbound_capture_port: INBOUND_CAPTURE_PORT,
        }
    }
}

// === impl Cidr ===

impl Cidr {
    /// Parses `addr/prefix` or a bare address (a host route), clearing host bits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| "is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8)".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("has a prefix length outside 0-{max}")),
            },
        };
        Ok(Self {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether this is an IPv6 network.
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

// === impl InvalidOptions ===

impl fmt::Display for InvalidOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid options:")?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
