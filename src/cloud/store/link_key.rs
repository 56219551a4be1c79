//! The secrets of share links made by relayed NewShareLink events:
//! derived, never stored.
//!
//! A daemon that lost the answer to a NewShareLink sends the event again,
//! maybe to another node, and must get the same link back. Storing the
//! secret with the event's answer would let anyone who reads the database
//! redeem the link. Instead each such secret is
//! HMAC-SHA-256(K, account ‖ daemon ‖ seq) cut to 128 bits, where K is
//! derived (HKDF-SHA-256 with a fixed label) from the cloud CA's private
//! key, which every node of one service holds in `--data DIR` already.
//! The event's answer keeps the link number; the Place keeps the SHA-256
//! of the secret ([`super::link_digest`]); a duplicate on any node
//! recomputes the secret.
//!
//! Links made by the operator or the portal are never replayed: they get
//! random secrets ([`super::fresh_secret`]), not kept anywhere.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustls::crypto::tls13::OkmBlock;

use crate::cloud::CloudError;
use crate::cloud::authority::CloudAuthority;
use crate::cloud::model::{AccountId, LinkSecret};
use crate::proto::EventId;

/// The HKDF label: a new label makes every derived secret new.
const LABEL: &[u8] = b"handoff cloud share-link secrets v1";

/// K: the key relayed share-link secrets are derived from.
pub struct LinkKey(OkmBlock);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// The TLS 1.3 suite whose HKDF, HMAC and hash the link secrets use (the
/// tree's one provider, aws-lc-rs).
pub(super) fn suite() -> &'static rustls::Tls13CipherSuite {
    match rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13() {
        Some(suite) => suite,
        None => unreachable!("a TLS 1.3 suite is one"),
    }
}

impl LinkKey {
    /// K from the cloud CA's key (its PKCS#8 PEM, the same bytes on
    /// every node that holds a copy).
    pub fn of_authority(authority: &CloudAuthority) -> LinkKey {
        LinkKey::from_secret(authority.key_pem().as_bytes())
    }

    fn from_secret(ikm: &[u8]) -> LinkKey {
        let expander = suite().hkdf_provider.extract_from_secret(Some(LABEL), ikm);
        LinkKey(expander.expand_block(&[LABEL]))
    }

    /// The secret of the link that `account`'s event `id` made: 128 bits,
    /// hex, as [`super::fresh_secret`] writes them.
    pub fn secret_for(&self, account: &AccountId, id: &EventId) -> LinkSecret {
        // Lengths first: no two (account, daemon) pairs give one message.
        let mut message = Vec::with_capacity(24 + account.as_str().len() + id.daemon.len());
        for part in [account.as_str().as_bytes(), id.daemon.as_bytes()] {
            message.extend_from_slice(&(part.len() as u64).to_be_bytes());
            message.extend_from_slice(part);
        }
        message.extend_from_slice(&id.seq.to_be_bytes());
        let tag = suite().hkdf_provider.hmac_sign(&self.0, &message);
        LinkSecret(crate::hex::encode(&tag.as_ref()[..16]))
    }
}

/// Where a store finds K: the CA in its data directory, read the first
/// time a relayed batch needs it (a store opened for `cloud migrate` or
/// `copy` never does).
#[derive(Debug, Default)]
pub(crate) struct LinkKeys {
    data_dir: Option<PathBuf>,
    key: OnceLock<LinkKey>,
}

impl LinkKeys {
    pub(crate) fn in_dir(data_dir: &Path) -> LinkKeys {
        LinkKeys {
            data_dir: Some(data_dir.to_owned()),
            key: OnceLock::new(),
        }
    }

    /// K, from the CA in the data directory (made there if it has none,
    /// as `cloud serve` does at start).
    pub(crate) fn get(&self) -> Result<&LinkKey, CloudError> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        let Some(dir) = &self.data_dir else {
            return Err(CloudError::Failed(
                "this store was opened without the cloud's data directory, whose CA \
                 share-link secrets are derived from"
                    .into(),
            ));
        };
        let authority = CloudAuthority::load_or_create(dir)?;
        let _ = self.key.set(LinkKey::of_authority(&authority));
        Ok(self.key.get().unwrap_or_else(|| unreachable!("just set")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(daemon: &str, seq: u64) -> EventId {
        EventId {
            daemon: daemon.into(),
            seq,
        }
    }

    #[test]
    fn a_secret_depends_on_the_key_the_account_the_daemon_and_the_seq() {
        let k = LinkKey::from_secret(b"one CA key");
        let a = AccountId::new("a@example.com");
        let first = k.secret_for(&a, &id("lake", 1));
        assert_eq!(first.0.len(), 32, "128 bits, hex");
        assert_eq!(first, k.secret_for(&a, &id("lake", 1)), "recomputed alike");
        let others = [
            LinkKey::from_secret(b"another CA key").secret_for(&a, &id("lake", 1)),
            k.secret_for(&AccountId::new("b@example.com"), &id("lake", 1)),
            k.secret_for(&a, &id("barn", 1)),
            k.secret_for(&a, &id("lake", 2)),
        ];
        for other in others {
            assert_ne!(first, other);
        }
        // The parts are length-prefixed: moving a byte between account
        // and daemon changes the secret.
        assert_ne!(
            k.secret_for(&AccountId::new("ab"), &id("c", 1)),
            k.secret_for(&AccountId::new("a"), &id("bc", 1))
        );
    }
}
