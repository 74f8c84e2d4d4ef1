//! GUIDs as Dataverse prints them: lower-case, hyphenated, no braces.

use std::fmt;

/// A 128-bit identifier. Ordering is byte order, which equals the order of the lower-case text
/// form, so "rows ordered by primary key" is stable and easy to reason about in tests.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, case-insensitive, optionally in braces.
    pub fn parse(text: &str) -> Option<Guid> {
        let t = text.trim();
        let t = t
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(t);
        let b = t.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in b.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let v = (c as char).to_digit(16)? as u8;
            out[nibbles / 2] |= if nibbles.is_multiple_of(2) { v << 4 } else { v };
            nibbles += 1;
        }
        Some(Guid(out))
    }

    /// A deterministic, random-looking version-4 GUID from two seeds.
    pub fn from_seed(a: u64, b: u64) -> Guid {
        let hi = splitmix(a ^ splitmix(b.wrapping_add(0x9e37_79b9_7f4a_7c15)));
        let lo = splitmix(hi ^ b.rotate_left(17) ^ 0xd1b5_4a32_d192_ed03);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Guid(bytes)
    }

    /// Upper-case form in braces, as used inside paging cookies: `{D5026A4D-...}`.
    pub fn braced_upper(&self) -> String {
        format!("{{{}}}", self.to_string().to_uppercase())
    }
}

/// The splitmix64 finaliser: a cheap, well-mixed deterministic hash.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = [0u8; 36];
        let mut j = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s[j] = b'-';
                j += 1;
            }
            s[j] = HEX[(byte >> 4) as usize];
            s[j + 1] = HEX[(byte & 0xf) as usize];
            j += 2;
        }
        f.write_str(std::str::from_utf8(&s).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip_in_lower_case() {
        let g = Guid::parse("{7EB682F1-CA75-E511-80D4-00155D2A68D1}").unwrap();
        assert_eq!(g.to_string(), "7eb682f1-ca75-e511-80d4-00155d2a68d1");
        assert_eq!(g.braced_upper(), "{7EB682F1-CA75-E511-80D4-00155D2A68D1}");
    }

    #[test]
    fn malformed_guids_are_rejected() {
        assert!(Guid::parse("7eb682f1-ca75-e511-80d4-00155d2a68d").is_none());
        assert!(Guid::parse("7eb682f1xca75-e511-80d4-00155d2a68d1").is_none());
        assert!(Guid::parse("zzb682f1-ca75-e511-80d4-00155d2a68d1").is_none());
    }

    #[test]
    fn seeded_guids_are_deterministic_and_distinct() {
        assert_eq!(Guid::from_seed(1, 2), Guid::from_seed(1, 2));
        assert_ne!(Guid::from_seed(1, 2), Guid::from_seed(1, 3));
        assert_ne!(Guid::from_seed(1, 2), Guid::from_seed(2, 2));
    }
}
