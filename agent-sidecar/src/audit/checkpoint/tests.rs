use super::*;
use crate::audit::{hash::leaf_hash, tree::TreeFiles};

// The key and note of golang.org/x/mod/sumdb/note's documentation.
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn signs_and_verifies_the_go_reference_note() {
    let signer = NoteSigner::parse(GO_SKEY).unwrap();
    assert_eq!(signer.verifier().to_text(), GO_VKEY);
    assert_eq!(signer.verifier().id(), 0xc74f20a3);
    let note = signer.sign(GO_TEXT).unwrap();
    assert_eq!(note, format!("{GO_TEXT}\n{GO_SIG}"));
    let verifier = NoteVerifier::parse(GO_VKEY).unwrap();
    assert_eq!(verifier.open(&note).unwrap(), GO_TEXT);
    assert_eq!(&*signer.to_private_text(), GO_SKEY);
}

#[test]
fn verifies_the_c2sp_spec_example() {
    let v = NoteVerifier::parse(
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    )
    .unwrap();
    let note = "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    assert_eq!(v.open(note).unwrap(), "This is an example message.\n");
}

#[test]
fn a_changed_text_or_another_key_does_not_verify() {
    let verifier = NoteVerifier::parse(GO_VKEY).unwrap();
    let changed = format!("{}\n{GO_SIG}", GO_TEXT.replace("answer", "solution"));
    assert!(matches!(
        verifier.open(&changed),
        Err(NoteError::BadSignature { .. })
    ));
    let other = NoteSigner::from_seed("PeterNeumann", &[1; 32]).unwrap();
    let note = other.sign(GO_TEXT).unwrap();
    assert!(matches!(
        verifier.open(&note),
        Err(NoteError::Unsigned { .. })
    ));
    // Unknown signatures are ignored; the known one decides.
    let both = format!("{GO_TEXT}\n{}{GO_SIG}", note.split("\n\n").nth(1).unwrap());
    assert_eq!(verifier.open(&both).unwrap(), GO_TEXT);
    assert!(
        NoteVerifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .is_err()
    );
    assert!(NoteSigner::from_seed("bad name", &[1; 32]).is_err());
    assert!(other.sign("two\n\nparagraphs\n").is_err());
}

#[test]
fn generated_keys_round_trip_through_their_text() {
    let s = NoteSigner::generate("example.test/log").unwrap();
    let back = NoteSigner::parse(&s.to_private_text()).unwrap();
    assert_eq!(back.verifier(), s.verifier());
    assert_eq!(
        NoteVerifier::parse(&s.verifier().to_text()).unwrap(),
        s.verifier()
    );
}

#[test]
fn checkpoint_text_follows_tlog_checkpoint() {
    let cp = Checkpoint {
        origin: "example.com/behind-the-sofa".into(),
        size: 20852163,
        root: Hash::from_base64("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=").unwrap(),
    };
    assert_eq!(
        cp.to_text(),
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
    assert_eq!(Checkpoint::parse_text(&cp.to_text()).unwrap(), cp);
    let ext = format!("{}extension line\n", cp.to_text());
    assert_eq!(Checkpoint::parse_text(&ext).unwrap(), cp);
    for bad in [
        "o\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n12\nnot-base64\n",
        "\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    ] {
        assert!(Checkpoint::parse_text(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        Checkpoint::parse_text("o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
            .unwrap()
            .root,
        Hash::empty()
    );
}

#[test]
fn notes_files_split_into_notes() {
    let s = NoteSigner::from_seed("o", &[2; 32]).unwrap();
    let a = s
        .sign("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
        .unwrap();
    let b = s
        .sign("o\n2\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
        .unwrap();
    let file = format!("{a}\n{b}\n");
    let notes = split_notes(&file);
    assert_eq!(notes, vec![(1, a), (7, b)]);
}

#[test]
fn never_signs_a_tree_that_does_not_extend_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let witness = dir.path().join("witness");
    let mut tree = TreeFiles::open(&dir.path().join("tree")).unwrap();
    for i in 0..10u8 {
        tree.push(leaf_hash(&[i]));
    }
    tree.flush().unwrap();
    let signer = NoteSigner::from_seed("example.test/log", &[3; 32]).unwrap();
    let verifier = signer.verifier();
    let sinks: Vec<Box<dyn CheckpointSink>> = vec![Box::new(FileSink::new(&witness))];
    let mut cp = Checkpointer::open(dir.path(), "example.test/log".into(), signer, sinks).unwrap();
    let (first, failures) = cp.sign(&tree, 10, tree.root()).unwrap();
    assert!(failures.is_empty());
    assert_eq!(
        SignedCheckpoint::open(&first.note, &verifier).unwrap(),
        first
    );
    for i in 10..15u8 {
        tree.push(leaf_hash(&[i]));
    }
    cp.sign(&tree, 15, tree.root()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(LATEST_FILE)).unwrap(),
        SignedCheckpoint::sign(
            Checkpoint {
                origin: "example.test/log".into(),
                size: 15,
                root: tree.root()
            },
            &NoteSigner::from_seed("example.test/log", &[3; 32]).unwrap()
        )
        .unwrap()
        .note
    );
    // A different history of 20 leaves: not an extension of the 15 signed.
    let mut forked = TreeFiles::open(&dir.path().join("forked")).unwrap();
    for i in 0..20u8 {
        forked.push(leaf_hash(&[i, 1]));
    }
    let err = cp.sign(&forked, 20, forked.root()).unwrap_err();
    assert!(
        matches!(err, CheckpointError::Inconsistent { last_size: 15, .. }),
        "{err}"
    );
    assert!(cp.sign(&tree, 12, tree.root()).is_err(), "a smaller tree");
    // Reopened, it remembers the last one signed and still refuses.
    let signer = NoteSigner::from_seed("example.test/log", &[3; 32]).unwrap();
    let mut cp =
        Checkpointer::open(dir.path(), "example.test/log".into(), signer, Vec::new()).unwrap();
    assert_eq!(cp.last().unwrap().size, 15);
    assert!(cp.sign(&forked, 20, forked.root()).is_err());
    let history = std::fs::read_to_string(dir.path().join(HISTORY_FILE)).unwrap();
    assert_eq!(split_notes(&history).len(), 2);
    assert_eq!(
        split_notes(&std::fs::read_to_string(&witness).unwrap()).len(),
        2
    );
    // Another key cannot continue the log.
    let other = NoteSigner::from_seed("example.test/log", &[4; 32]).unwrap();
    assert!(Checkpointer::open(dir.path(), "example.test/log".into(), other, Vec::new()).is_err());
}
