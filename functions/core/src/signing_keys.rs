//! Which stored keys sign a webhook's deliveries after a rotation or a switch of signature
//! scheme (SPEC §7 `rotate-secret`, §10 `signature_scheme`): pure decisions over the stored,
//! still encrypted, keys. The handler generates and encrypts a new key when one is needed.
//!
//! Stored keys are ordered current first; every key in the list signs until its `expires_at`.

use crate::model::SignatureScheme;
use crate::ports::StoredSecret;
use crate::validation::DEFAULT_GRACE_SECONDS;

/// How long the keys of the previous scheme keep signing after a switch of scheme: as after a
/// rotation with the default grace, so receivers can move to the new scheme without a gap.
pub const SWITCH_GRACE_SECONDS: u32 = DEFAULT_GRACE_SECONDS;

/// The keys after `current` replaces the current key at `now`: earlier keys keep signing until
/// `now + grace` (or their own earlier end); with no grace, or once ended, they go.
pub fn rotated(previous: &[StoredSecret], current: StoredSecret, now: i64, grace: u32) -> Vec<StoredSecret> {
    let mut keys = vec![current];
    if grace > 0 {
        keys.extend(with_grace(previous.iter(), now, grace));
    }
    keys
}

/// What a switch of `signature_scheme` does with a webhook's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeSwitch {
    /// The webhook already signs with this scheme: nothing changes.
    Unchanged,
    /// An HMAC secret of the webhook still signs (a switch to `v1a` less than a grace ago): it
    /// becomes current again, so receivers keep the secret they hold; these are the new keys.
    Restore(Vec<StoredSecret>),
    /// A new key of the scheme is needed, to be made current with [`rotated`] and
    /// [`SWITCH_GRACE_SECONDS`]. For `v1` its secret is shown in the answer, as at create; a
    /// `v1a` public key is always on the webhook, so a `v1a` key is never restored.
    NewKey,
}

/// The switch of a webhook signing with `from` to `to` at `now`.
pub fn switch_scheme(stored: &[StoredSecret], from: SignatureScheme, to: SignatureScheme, now: i64) -> SchemeSwitch {
    if from == to {
        return SchemeSwitch::Unchanged;
    }
    let signing = |k: &&StoredSecret| k.expires_at.is_none_or(|t| t > now);
    let kept = match to {
        SignatureScheme::V1 => stored.iter().position(|k| k.scheme == SignatureScheme::V1 && signing(&k)),
        SignatureScheme::V1a => None,
    };
    match kept {
        Some(i) => {
            let current = StoredSecret { expires_at: None, ..stored[i].clone() };
            let others = stored.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, k)| k);
            let mut keys = vec![current];
            keys.extend(with_grace(others, now, SWITCH_GRACE_SECONDS));
            SchemeSwitch::Restore(keys)
        }
        None => SchemeSwitch::NewKey,
    }
}

/// `keys` ending at `now + grace` at the latest, those already ended left out.
fn with_grace<'a>(
    keys: impl Iterator<Item = &'a StoredSecret>,
    now: i64,
    grace: u32,
) -> impl Iterator<Item = StoredSecret> {
    let end = now + i64::from(grace);
    keys.filter_map(move |k| {
        let until = k.expires_at.map_or(end, |t| t.min(end));
        (until > now).then(|| StoredSecret { expires_at: Some(until), ..k.clone() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn key(name: &str, scheme: SignatureScheme, expires_at: Option<i64>) -> StoredSecret {
        StoredSecret { ciphertext: name.to_owned(), expires_at, scheme }
    }

    use SignatureScheme::{V1, V1a};

    #[test]
    fn rotation_keeps_earlier_keys_for_the_grace_at_most() {
        // GIVEN a current key, one in an earlier grace ending soon, and one that ended
        let previous = [key("a", V1a, None), key("b", V1, Some(NOW + 60)), key("c", V1, Some(NOW))];
        // WHEN a new key is made current with a grace of an hour
        let keys = rotated(&previous, key("new", V1a, None), NOW, 3600);
        // THEN the new key leads, `a` ends in an hour, `b` keeps its earlier end, `c` is gone
        assert_eq!(keys, [key("new", V1a, None), key("a", V1a, Some(NOW + 3600)), key("b", V1, Some(NOW + 60))]);
        // AND with no grace only the new key is left
        assert_eq!(rotated(&previous, key("new", V1a, None), NOW, 0), [key("new", V1a, None)]);
    }

    #[test]
    fn switch_table() {
        let grace = Some(NOW + i64::from(SWITCH_GRACE_SECONDS));
        // (case, stored, from, to, expected)
        let cases = [
            ("same scheme", vec![key("s", V1, None)], V1, V1, SchemeSwitch::Unchanged),
            ("same scheme v1a", vec![key("k", V1a, None)], V1a, V1a, SchemeSwitch::Unchanged),
            ("to v1a: always a new key pair", vec![key("s", V1, None)], V1, V1a, SchemeSwitch::NewKey),
            (
                "to v1a, back from a recent switch: still a new key pair",
                vec![key("s", V1, None), key("k", V1a, Some(NOW + 10))],
                V1,
                V1a,
                SchemeSwitch::NewKey,
            ),
            ("to v1 with no secret: a new one", vec![key("k", V1a, None)], V1a, V1, SchemeSwitch::NewKey),
            (
                "to v1 once the secret's grace ended: a new one",
                vec![key("k", V1a, None), key("s", V1, Some(NOW))],
                V1a,
                V1,
                SchemeSwitch::NewKey,
            ),
            (
                "to v1 within the secret's grace: the secret signs again, the key pair gets the grace",
                vec![key("k", V1a, None), key("s", V1, Some(NOW + 5)), key("t", V1, Some(NOW + 2))],
                V1a,
                V1,
                SchemeSwitch::Restore(vec![key("s", V1, None), key("k", V1a, grace), key("t", V1, Some(NOW + 2))]),
            ),
        ];
        for (case, stored, from, to, expected) in cases {
            // GIVEN stored keys WHEN the scheme is switched THEN the keys are as expected
            assert_eq!(switch_scheme(&stored, from, to, NOW), expected, "{case}");
        }
    }
}
