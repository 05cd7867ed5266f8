use super::*;
use crate::audit::test_support::{entry, open, signer};

fn log(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..n {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    dir
}

#[test]
fn inclusion_proofs_carry_the_record_and_the_signed_checkpoint() {
    let dir = log(21);
    let p = prove_inclusion(dir.path(), 13, None).unwrap();
    assert_eq!(p.tree_size, 21);
    assert!(p.record.as_deref().unwrap().contains("\"seq\":13,"));
    assert!(p.checkpoint.is_some());
    let doc = ProofDoc::Inclusion(p.clone());
    let checked = check(&doc, None, Some(&signer().verifier())).unwrap();
    assert!(checked.signed);
    // Through JSON, as `audit check-proof` reads it.
    let json = serde_json::to_string(&doc).unwrap();
    assert!(json.starts_with("{\"type\":\"inclusion\""));
    let back: ProofDoc = serde_json::from_str(&json).unwrap();
    assert_eq!(back, doc);
    // A changed record, hash or root does not check.
    let mut bad = p.clone();
    bad.record = Some(bad.record.unwrap().replace("agent-1", "agent-2"));
    assert_eq!(
        check(&ProofDoc::Inclusion(bad), None, None),
        Err(CheckError::Record)
    );
    let mut bad = p.clone();
    bad.hashes[0].0[0] ^= 1;
    assert!(check(&ProofDoc::Inclusion(bad), None, None).is_err());
    let mut bad = p;
    bad.root.0[0] ^= 1;
    assert!(check(&ProofDoc::Inclusion(bad.clone()), None, None).is_err());
    // A smaller tree without a checkpoint: valid, not signed.
    let p = prove_inclusion(dir.path(), 3, Some(10)).unwrap();
    assert!(p.checkpoint.is_none());
    assert!(
        !check(&ProofDoc::Inclusion(p), None, Some(&signer().verifier()))
            .unwrap()
            .signed
    );
    assert!(prove_inclusion(dir.path(), 21, None).is_err());
    assert!(prove_inclusion(dir.path(), 3, Some(22)).is_err());
}

#[test]
fn consistency_proofs_between_checkpoints_check() {
    let dir = tempfile::tempdir().unwrap();
    let l = open(dir.path());
    for i in 0..7 {
        l.append(entry(i)).unwrap();
    }
    l.close().unwrap();
    drop(l);
    let l = open(dir.path());
    for i in 7..19 {
        l.append(entry(i)).unwrap();
    }
    l.close().unwrap();
    let p = prove_consistency(dir.path(), 7, 19).unwrap();
    assert!(p.checkpoint1.is_some() && p.checkpoint2.is_some());
    let checked = check(
        &ProofDoc::Consistency(p.clone()),
        None,
        Some(&signer().verifier()),
    )
    .unwrap();
    assert!(checked.signed);
    let mut bad = p;
    bad.root1.0[5] ^= 1;
    assert!(check(&ProofDoc::Consistency(bad), None, None).is_err());
    assert!(prove_consistency(dir.path(), 8, 7).is_err());
    assert!(prove_consistency(dir.path(), 1, 20).is_err());
}
