//! Signed checkpoints: the C2SP `tlog-checkpoint` body (origin, tree size,
//! root) in a C2SP `signed-note`, signed with Ed25519. The signing key is a
//! PKCS#8 PEM (what `openssl genpkey -algorithm ed25519`, Helm's
//! `genPrivateKey "ed25519"` and `flowfed ledger keygen` write); the verifier
//! key is the note format `origin+keyid+base64`.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer as _, SigningKey};
use signed_note::{Note, Signer, StandardVerifier, VerifierList};
use tlog_tiles::Checkpoint;
use tlog_tiles::tlog::Hash;

/// Why a checkpoint or key is not good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the signing key is not an Ed25519 PKCS#8 PEM")]
    BadSigningKey,
    #[error("the verifier key is not an Ed25519 note verifier key (name+id+base64)")]
    BadVerifierKey,
    #[error("the checkpoint is not a signed note")]
    NotANote,
    #[error("the checkpoint is not signed by {0}")]
    NotSignedBy(String),
    #[error("the checkpoint's body is malformed")]
    Malformed,
    #[error("the checkpoint is for origin {found}, not {expected}")]
    WrongOrigin { expected: String, found: String },
}

/// The ledger's signing key, named by the log's origin.
pub struct LedgerKey {
    origin: String,
    key: SigningKey,
    id: u32,
    verifier: String,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerKey({})", self.verifier)
    }
}

impl LedgerKey {
    /// The key of the log `origin` from a PKCS#8 PEM.
    pub fn from_pem(origin: &str, pem: &str) -> Result<Self, CheckpointError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|_| CheckpointError::BadSigningKey)?;
        let verifier = signed_note::new_ed25519_verifier_key(origin, &key.verifying_key());
        let id = StandardVerifier::new(&verifier)
            .map(|v| signed_note::Verifier::key_id(&v))
            .map_err(|_| CheckpointError::BadSigningKey)?;
        Ok(LedgerKey {
            origin: origin.to_owned(),
            key,
            id,
            verifier,
        })
    }

    /// A new random key, as a PKCS#8 PEM.
    pub fn generate_pem() -> String {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        key.to_pkcs8_pem(Default::default())
            .expect("an Ed25519 key encodes")
            .to_string()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key anyone checks this key's checkpoints with.
    pub fn verifier_key(&self) -> &str {
        &self.verifier
    }

    /// The signed checkpoint of the tree (`size`, `root`).
    pub fn sign(&self, size: u64, root: Hash) -> String {
        let body = Checkpoint::new(&self.origin, size, root, "")
            .expect("a non-empty origin makes a checkpoint")
            .to_bytes();
        let mut note = Note::new(&body, &[]).expect("a checkpoint body is a note text");
        note.add_sigs(&[self])
            .expect("the origin is a valid key name");
        String::from_utf8(note.to_bytes()).expect("notes are UTF-8")
    }
}

impl Signer for LedgerKey {
    fn name(&self) -> &str {
        &self.origin
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// A checkpoint whose signature verified.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// The tree head `note` signs, if `verifier_key` signed it.
pub fn open(note: &str, verifier_key: &str) -> Result<TreeHead, CheckpointError> {
    let verifier =
        StandardVerifier::new(verifier_key).map_err(|_| CheckpointError::BadVerifierKey)?;
    let origin = signed_note::Verifier::name(&verifier).to_owned();
    let note = Note::from_bytes(note.as_bytes()).map_err(|_| CheckpointError::NotANote)?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|_| CheckpointError::NotSignedBy(verifier_key.to_owned()))?;
    let checkpoint = Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::Malformed)?;
    if checkpoint.origin() != origin {
        return Err(CheckpointError::WrongOrigin {
            expected: origin,
            found: checkpoint.origin().to_owned(),
        });
    }
    Ok(TreeHead {
        size: checkpoint.size(),
        root: *checkpoint.hash(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "flowfed.io/ledger/test";

    fn key() -> LedgerKey {
        LedgerKey::from_pem(ORIGIN, &LedgerKey::generate_pem()).unwrap()
    }

    #[test]
    fn a_checkpoint_opens_with_its_key_and_reads_as_signed() {
        let key = key();
        let root = Hash([7; 32]);
        let note = key.sign(42, root);
        assert!(note.starts_with(&format!("{ORIGIN}\n42\n")), "{note}");
        assert_eq!(
            open(&note, key.verifier_key()),
            Ok(TreeHead { size: 42, root })
        );
    }

    #[test]
    fn another_key_or_an_edited_body_does_not_open() {
        let (key, other) = (key(), key());
        let note = key.sign(42, Hash([7; 32]));
        assert!(matches!(
            open(&note, other.verifier_key()),
            Err(CheckpointError::NotSignedBy(_))
        ));
        let edited = note.replacen("\n42\n", "\n43\n", 1);
        assert!(open(&edited, key.verifier_key()).is_err());
        assert_eq!(
            open("garbage", key.verifier_key()),
            Err(CheckpointError::NotANote)
        );
    }

    #[test]
    fn a_key_that_is_not_pkcs8_ed25519_is_refused() {
        assert_eq!(
            LedgerKey::from_pem(
                ORIGIN,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .unwrap_err(),
            CheckpointError::BadSigningKey
        );
    }
}
