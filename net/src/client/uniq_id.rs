//! Client-generated unique message ids (the `UNIQ_KEY` property), in the format of RocketMQ's
//! `MessageClientIDSetter` so that tools decoding Java ids read ours too.
//!
//! 16 bytes written as 32 upper-case hex characters:
//!
//! | bytes | field | value |
//! |---:|---|---|
//! | 0..4 | ip | the client's IPv4 address |
//! | 4..6 | pid | process id, low 16 bits |
//! | 6..10 | seed | per-process value (Java uses its class loader's hash code) |
//! | 10..14 | time | milliseconds since the start of the current month (UTC here; Java uses local time) |
//! | 14..16 | counter | per-process counter, wrapping at 65536 |
//!
//! Ids are unique per process as long as fewer than 65536 are made in one millisecond.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The process-wide prefix (ip, pid, seed) and counter.
struct Generator {
    prefix: String,
    counter: AtomicU16,
}

fn generator() -> &'static Generator {
    static GEN: OnceLock<Generator> = OnceLock::new();
    GEN.get_or_init(|| {
        let seed = (now_millis() as u32) ^ std::process::id().rotate_left(16);
        Generator {
            prefix: prefix(local_ipv4(), std::process::id() as u16, seed as i32),
            counter: AtomicU16::new(0),
        }
    })
}

/// A new unique id.
pub fn new_uniq_id() -> String {
    let gen = generator();
    let now = now_millis();
    let since_month = (now - month_start_millis(now)) as i32;
    let counter = gen.counter.fetch_add(1, Ordering::Relaxed);
    format!("{}{}", gen.prefix, suffix(since_month, counter))
}

fn prefix(ip: Ipv4Addr, pid: u16, seed: i32) -> String {
    let mut out = String::with_capacity(20);
    for b in ip.octets() {
        out.push_str(&format!("{b:02X}"));
    }
    out.push_str(&format!("{pid:04X}{seed:08X}"));
    out
}

fn suffix(since_month: i32, counter: u16) -> String {
    format!("{since_month:08X}{counter:04X}")
}

/// The client's IPv4 address as the OS would pick it for an outbound route, else 127.0.0.1.
/// (Connecting a UDP socket sends nothing.)
pub(crate) fn local_ipv4() -> Ipv4Addr {
    let probe = || -> Option<Ipv4Addr> {
        let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
        sock.connect("192.0.2.1:9").ok()?;
        match sock.local_addr().ok()?.ip() {
            std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            _ => None,
        }
    };
    probe().unwrap_or(Ipv4Addr::LOCALHOST)
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the epoch at 00:00 UTC on the first day of the month holding `millis`.
fn month_start_millis(millis: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    let day_of_month = tern_store::civil_time::UtcFields::from_epoch_millis(millis).day;
    millis - millis.rem_euclid(DAY) - (day_of_month - 1) * DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_exact_vector() {
        // ip 192.168.0.1, pid 0x1234, seed 0x0A0B0C0D, 1000 ms into the month, counter 7.
        let id = format!(
            "{}{}",
            prefix(Ipv4Addr::new(192, 168, 0, 1), 0x1234, 0x0A0B_0C0D),
            suffix(1000, 7)
        );
        assert_eq!(id, "C0A8000112340A0B0C0D000003E80007");
        // A negative seed is written as its two's complement, as Java's hex writer does.
        assert_eq!(&prefix(Ipv4Addr::LOCALHOST, 1, -1)[12..], "FFFFFFFF");
    }

    #[test]
    fn ids_are_32_hex_chars_and_distinct() {
        let a = new_uniq_id();
        let b = new_uniq_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_ne!(a, b);
        assert_eq!(a[..20], b[..20]);
    }

    #[test]
    fn month_start() {
        // 2026-11-25T23:59:14Z → 2026-11-01T00:00:00Z.
        assert_eq!(month_start_millis(1_795_651_154_000), 1_793_491_200_000);
        // 2024-03-01 stays itself; 2024-02-29 (leap day) → 2024-02-01.
        assert_eq!(month_start_millis(1_709_251_200_000), 1_709_251_200_000);
        assert_eq!(month_start_millis(1_709_164_800_000), 1_706_745_600_000);
    }
}
