//! Record ids: UUIDv7 (RFC 9562 section 5.7): 48 bits of Unix
//! milliseconds, then random bits, so ids sort roughly by time and do not
//! collide across sidecars. The sequence number orders a log; the id
//! names a record across logs and collectors (de-duplication).

use rand::RngCore;

use super::time::Timestamp;

/// A UUIDv7 for a record made at `time`, in the hyphenated lower-case form.
pub(super) fn record_id(time: Timestamp, rng: &mut impl RngCore) -> String {
    let millis = u64::try_from(time.nanos().max(0) / 1_000_000).unwrap_or(0);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    rng.fill_bytes(&mut b[6..]);
    b[6] = 0x70 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(DIGITS[(byte >> 4) as usize] as char);
        s.push(DIGITS[(byte & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests;
