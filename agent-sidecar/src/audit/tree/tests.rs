use std::convert::Infallible;

use super::*;
use crate::audit::hash::leaf_hash;

/// The RFC 6962 test leaves (transparency-dev/merkle `testonly`).
fn rfc_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|s| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    })
    .collect()
}

fn h(s: &str) -> Hash {
    Hash::from_hex(s).unwrap()
}

/// The definition of MTH in RFC 6962 section 2.1, recursively.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::empty(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// PATH of RFC 6962 section 2.1.1, recursively on slices.
fn brute_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = split_point(n as u64) as usize;
    if m < k {
        let mut p = brute_path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = brute_path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// SUBPROOF of RFC 6962 section 2.1.2, recursively on slices.
fn brute_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { vec![] } else { vec![mth(leaves)] };
    }
    let k = split_point(n as u64) as usize;
    if m <= k {
        let mut p = brute_subproof(m, &leaves[..k], whole);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = brute_subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// Complete nodes computed from the leaves.
struct Memory(Vec<Hash>);

impl NodeSource for Memory {
    type Error = Infallible;
    fn node(&self, level: u32, index: u64) -> Result<Hash, Infallible> {
        let start = (index << level) as usize;
        Ok(mth(&self.0[start..start + (1usize << level)]))
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("record {i}").as_bytes()))
        .collect()
}

#[test]
fn roots_match_the_rfc6962_vectors() {
    let want = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let hashes: Vec<Hash> = rfc_leaves().iter().map(|l| leaf_hash(l)).collect();
    let mut range = CompactRange::new();
    assert_eq!(range.root(), Hash::empty());
    for (i, leaf) in hashes.iter().enumerate() {
        range.push(*leaf, |_, _| {});
        assert_eq!(range.root(), h(want[i]), "root of size {}", i + 1);
        let mem = Memory(hashes.clone());
        assert_eq!(root(&mem, i as u64 + 1).unwrap(), h(want[i]));
    }
}

fn rfc_roots() -> Vec<Hash> {
    let hashes: Vec<Hash> = rfc_leaves().iter().map(|l| leaf_hash(l)).collect();
    (1..=8).map(|n| mth(&hashes[..n])).collect()
}

#[test]
fn inclusion_proofs_match_the_rfc6962_vectors() {
    // (leaf index, tree size, proof) from transparency-dev/merkle's
    // proof/verify_test.go (whose leaf numbers start at 1).
    let vectors: &[(u64, u64, &[&str])] = &[
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (0, 1, &[]),
    ];
    let hashes: Vec<Hash> = rfc_leaves().iter().map(|l| leaf_hash(l)).collect();
    let roots = rfc_roots();
    let mem = Memory(hashes.clone());
    for &(index, size, proof) in vectors {
        let want: Vec<Hash> = proof.iter().map(|s| h(s)).collect();
        assert_eq!(
            inclusion_proof(&mem, index, size).unwrap(),
            want,
            "{index}/{size}"
        );
        let root = roots[size as usize - 1];
        verify_inclusion(index, size, &hashes[index as usize], &want, &root).unwrap();
        // A wrong leaf, index, size or root, or a changed proof, fails.
        let wrong = leaf_hash(b"WrongLeaf");
        assert!(verify_inclusion(index, size, &wrong, &want, &root).is_err());
        assert!(verify_inclusion(index + 1, size, &hashes[index as usize], &want, &root).is_err());
        assert!(verify_inclusion(index, size * 2, &hashes[index as usize], &want, &root).is_err());
        assert!(
            verify_inclusion(index, size, &hashes[index as usize], &want, &Hash::empty()).is_err()
        );
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i].0[0] ^= 8;
            assert!(verify_inclusion(index, size, &hashes[index as usize], &bad, &root).is_err());
        }
        let mut longer = want.clone();
        longer.push(root);
        assert!(verify_inclusion(index, size, &hashes[index as usize], &longer, &root).is_err());
        if !want.is_empty() {
            let shorter = &want[..want.len() - 1];
            assert!(
                verify_inclusion(index, size, &hashes[index as usize], shorter, &root).is_err()
            );
        }
    }
}

#[test]
fn consistency_proofs_match_the_rfc6962_vectors() {
    let vectors: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    let hashes: Vec<Hash> = rfc_leaves().iter().map(|l| leaf_hash(l)).collect();
    let roots = rfc_roots();
    let mem = Memory(hashes);
    for &(size1, size2, proof) in vectors {
        let want: Vec<Hash> = proof.iter().map(|s| h(s)).collect();
        assert_eq!(
            consistency_proof(&mem, size1, size2).unwrap(),
            want,
            "{size1}->{size2}"
        );
        let (r1, r2) = (roots[size1 as usize - 1], roots[size2 as usize - 1]);
        verify_consistency(size1, size2, &want, &r1, &r2).unwrap();
        if !want.is_empty() {
            assert!(verify_consistency(size1, size2, &want, &r2, &r1).is_err());
            assert!(verify_consistency(size1, size2, &[], &r1, &r2).is_err());
            assert!(verify_consistency(size1 + 1, size2, &want, &r1, &r2).is_err());
            for i in 0..want.len() {
                let mut bad = want.clone();
                bad[i].0[0] ^= 16;
                assert!(verify_consistency(size1, size2, &bad, &r1, &r2).is_err());
            }
            let mut longer = want.clone();
            longer.push(r1);
            assert!(verify_consistency(size1, size2, &longer, &r1, &r2).is_err());
        }
    }
}

#[test]
fn consistency_edge_cases_follow_rfc9162() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    // An empty tree is a prefix of any tree; equal sizes need equal roots.
    verify_consistency(0, 5, &[], &a, &b).unwrap();
    verify_consistency(3, 3, &[], &a, &a).unwrap();
    assert!(verify_consistency(3, 3, &[], &a, &b).is_err());
    assert!(verify_consistency(3, 3, &[a], &a, &a).is_err());
    assert!(verify_consistency(2, 1, &[], &a, &b).is_err());
    assert!(verify_inclusion(0, 0, &a, &[], &a).is_err());
}

#[test]
fn proofs_match_brute_force_on_every_small_tree() {
    let all = leaves(70);
    let mem = Memory(all.clone());
    for size in 1..=all.len() {
        let tree = &all[..size];
        let root_n = mth(tree);
        let mut range = CompactRange::new();
        for l in tree {
            range.push(*l, |_, _| {});
        }
        assert_eq!(range.root(), root_n, "compact root of {size}");
        assert_eq!(
            CompactRange::from_source(&mem, size as u64).unwrap(),
            range,
            "range of {size} read from nodes"
        );
        for m in 0..size {
            let proof = inclusion_proof(&mem, m as u64, size as u64).unwrap();
            assert_eq!(proof, brute_path(m, tree), "PATH({m}, {size})");
            verify_inclusion(m as u64, size as u64, &tree[m], &proof, &root_n).unwrap();
        }
        for m in 1..=size {
            let proof = consistency_proof(&mem, m as u64, size as u64).unwrap();
            let want = if m == size {
                vec![]
            } else {
                brute_subproof(m, tree, true)
            };
            assert_eq!(proof, want, "PROOF({m}, {size})");
            verify_consistency(m as u64, size as u64, &proof, &mth(&tree[..m]), &root_n).unwrap();
        }
    }
}

#[test]
fn completed_nodes_are_reported_lowest_first() {
    let mut range = CompactRange::new();
    let mut seen = Vec::new();
    for l in leaves(4) {
        range.push(l, |level, _| seen.push(level));
    }
    // Leaves 0..4: leaf; leaf+node1; leaf; leaf+node1+node2.
    assert_eq!(seen, vec![0, 0, 1, 0, 0, 1, 2]);
}

#[test]
fn tree_files_persist_and_reopen_without_rehashing() {
    let dir = tempfile::tempdir().unwrap();
    let all = leaves(37);
    {
        let mut t = TreeFiles::open(dir.path()).unwrap();
        for l in &all[..20] {
            t.push(*l);
        }
        // Pending nodes are readable before the flush.
        assert_eq!(t.root(), mth(&all[..20]));
        assert_eq!(root(&t, 13).unwrap(), mth(&all[..13]));
        t.flush().unwrap();
        for l in &all[20..] {
            t.push(*l);
        }
        t.sync().unwrap();
    }
    let t = TreeFiles::open(dir.path()).unwrap();
    assert_eq!(t.size(), 37);
    assert_eq!(t.root(), mth(&all));
    let ro = TreeFiles::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.root(), mth(&all));
    let p = inclusion_proof(&ro, 30, 37).unwrap();
    verify_inclusion(30, 37, &all[30], &p, &mth(&all)).unwrap();
    assert_eq!(ro.leaves(3, 2).unwrap(), all[3..5].to_vec());
}

#[test]
fn tree_files_repair_levels_left_uneven_by_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let all = leaves(16);
    {
        let mut t = TreeFiles::open(dir.path()).unwrap();
        for l in &all {
            t.push(*l);
        }
        t.sync().unwrap();
    }
    // Level 2 lost its last node, level 3 its only one.
    let l2 = dir.path().join("level-02");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&l2)
        .unwrap()
        .set_len(32 * 3)
        .unwrap();
    std::fs::remove_file(dir.path().join("level-04")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("level-03"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let ro = TreeFiles::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.root(), mth(&all), "read-only folds missing nodes");
    let mut t = TreeFiles::open(dir.path()).unwrap();
    assert_eq!(t.root(), mth(&all));
    t.sync().unwrap();
    assert_eq!(std::fs::metadata(&l2).unwrap().len(), 32 * 4);
    // And cut to fewer leaves.
    t.truncate(11).unwrap();
    assert_eq!(t.root(), mth(&all[..11]));
    t.push(all[11]);
    assert_eq!(t.root(), mth(&all[..12]));
}
