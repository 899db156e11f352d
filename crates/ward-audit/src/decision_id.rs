//! Decision ids: the handle a caller gets with every decision (the
//! `ward-decision-id` header, a 403's `decision_id`, an AuthZEN answer's
//! `context.id`) and that its audit record carries.
//!
//! An id is 128 bits in the UUIDv7 layout (RFC 9562 §5.7), written as 32
//! lowercase hex digits without dashes — the same shape as the purely
//! random ids of earlier versions. The first 48 bits are the Unix time in
//! milliseconds when the id was made, the rest is version, variant and 74
//! random bits. The time prefix is what makes an id findable: the audit
//! index has no index on ids (random keys are the most expensive B-tree
//! inserts there are), but it has one on record time, and a record is
//! written within moments of its id, so a lookup reads only the records
//! around [`time_ms`]. Ids are correlation handles, not secrets: 74 random
//! bits keep them unique, not unguessable.

/// A new id for a decision made at `unix_ms`, from `random` (10 bytes from
/// the caller's CSPRNG; 74 bits of them are used).
#[must_use]
pub fn new(unix_ms: u64, random: [u8; 10]) -> String {
    let mut raw = [0u8; 16];
    // 48-bit big-endian milliseconds: good until the year 10889.
    for (i, byte) in raw.iter_mut().take(6).enumerate() {
        *byte = (unix_ms >> (40 - 8 * i)) as u8;
    }
    raw[6..].copy_from_slice(&random);
    raw[6] = 0x70 | (raw[6] & 0x0f);
    raw[8] = 0x80 | (raw[8] & 0x3f);
    let mut out = String::with_capacity(32);
    for byte in raw {
        for nibble in [byte >> 4, byte & 0x0f] {
            // A nibble is always a hex digit.
            out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    out
}

/// A new id for a decision made now, by the system clock, from `random`
/// (see [`new`]).
#[must_use]
pub fn now(random: [u8; 10]) -> String {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    new(unix_ms, random)
}

/// When `id` was made (Unix milliseconds), if it is a time-ordered id as
/// [`new`] makes them: 32 hex digits (either case) with the UUIDv7 version
/// and variant. `None` for anything else, such as the random ids of
/// earlier versions — those carry no time.
#[must_use]
pub fn time_ms(id: &str) -> Option<u64> {
    let digits = id.as_bytes();
    if digits.len() != 32 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let nibble = |i: usize| {
        digits
            .get(i)
            .and_then(|d| char::from(*d).to_digit(16))
            .map(u64::from)
    };
    // Version nibble 7 at digit 12; variant 0b10 in the top bits of digit 16.
    if nibble(12)? != 7 || nibble(16)? >> 2 != 0b10 {
        return None;
    }
    (0..12).try_fold(0u64, |acc, i| Some(acc << 4 | nibble(i)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_layout_is_uuidv7() {
        let id = new(0x0192_3456_789a, [0xff; 10]);
        // time | ver 7 + 12 random bits | variant 10 + 62 random bits
        assert_eq!(id, "0192345678 9a 7fff bfff ffffffffffff".replace(' ', ""));
        let zeros = new(1, [0; 10]);
        assert_eq!(
            zeros,
            "000000000001 7000 8000 000000000000".replace(' ', "")
        );
        // An independent reading of the same bits: the `uuid` layout.
        let hyphenated = format!(
            "{}-{}-{}-{}-{}",
            &id[..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..]
        );
        assert_eq!(hyphenated, "01923456-789a-7fff-bfff-ffffffffffff");
    }

    #[test]
    fn random_and_foreign_ids_carry_no_time() {
        // The random ids of earlier versions: version nibble 4 here.
        assert_eq!(time_ms("3f2a9c1e5b7d4e0fa1b2c3d4e5f60718"), None);
        // Right shape, wrong variant (0b11).
        assert_eq!(time_ms("0192345678 9a 7fff cfff ffffffffffff"), None);
        assert_eq!(time_ms("01923456789a7fffbfffffffffffffff0"), None);
        assert_eq!(time_ms("01923456789a7fffbfffffffffffff"), None);
        assert_eq!(time_ms("01923456789a7fffbfffffffffffffzz"), None);
        assert_eq!(time_ms(""), None);
        assert_eq!(time_ms("d17"), None);
        // Upper case reads the same.
        assert_eq!(
            time_ms("01923456789A7FFFBFFFFFFFFFFFFFFF"),
            Some(0x0192_3456_789a)
        );
    }

    proptest! {
        #[test]
        fn the_time_reads_back_and_orders_ids(
            a in 0u64..(1 << 48),
            b in 0u64..(1 << 48),
            ra in any::<[u8; 10]>(),
            rb in any::<[u8; 10]>(),
        ) {
            let (ia, ib) = (new(a, ra), new(b, rb));
            prop_assert_eq!(ia.len(), 32);
            prop_assert_eq!(time_ms(&ia), Some(a));
            prop_assert_eq!(time_ms(&ib), Some(b));
            if a < b {
                // Lexicographic order of the text is time order.
                prop_assert!(ia < ib);
            }
            // Two ids of one millisecond differ exactly when the random
            // bits they use differ.
            let used = |r: [u8; 10]| (r[0] & 0x0f, r[1], r[2] & 0x3f, r[3..].to_vec());
            prop_assert_eq!(new(a, ra) == new(a, rb), used(ra) == used(rb));
        }
    }
}
