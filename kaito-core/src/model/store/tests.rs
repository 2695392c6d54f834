//! The store on its own: commit, lookup, dedup, migration, holds and eviction.

use std::fs;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::*;

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Commits `body` under `key` as `file` and returns the stored model.
fn put(store: &ModelStore, key: &str, file: &str, body: &[u8]) -> StoredModel {
    let ingest = store.ingest(key, key).unwrap();
    fs::write(ingest.part(), body).unwrap();
    ingest.commit(file, &sha(body), ModelFormat::Gguf).unwrap()
}

fn age(path: &Path, by: Duration) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn a_committed_file_is_found_by_key_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    assert!(store.lookup("hf/o/r/main/m.gguf", None).unwrap().is_none());

    let stored = put(&store, "hf/o/r/main/m.gguf", "sub/m.gguf", b"weights");
    let hex = sha(b"weights");
    assert_eq!(stored.digest.as_deref(), Some(&*format!("sha256:{hex}")));
    assert_eq!(
        stored.primary,
        dir.path().join("snapshots").join(&hex).join("m.gguf")
    );
    assert_eq!(fs::read(&stored.primary).unwrap(), b"weights");
    assert_eq!(fs::read(store.blob_path(&hex)).unwrap(), b"weights");
    assert!(!dir
        .path()
        .join("tmp/hf%2Fo%2Fr%2Fmain%2Fm.gguf.part")
        .exists());
    assert!(!dir
        .path()
        .join("tmp/hf%2Fo%2Fr%2Fmain%2Fm.gguf.lock")
        .exists());

    let found = store.lookup("hf/o/r/main/m.gguf", None).unwrap().unwrap();
    assert_eq!(found.primary, stored.primary);
    assert_eq!(found.size, 7);
    // The expected checksum must match, in either case.
    assert!(store
        .lookup("hf/o/r/main/m.gguf", Some(&hex.to_uppercase()))
        .unwrap()
        .is_some());
    assert!(store
        .lookup("hf/o/r/main/m.gguf", Some(&"0".repeat(64)))
        .unwrap()
        .is_none());
    // A snapshot link someone deleted comes back.
    fs::remove_file(&found.primary).unwrap();
    let again = store.lookup("hf/o/r/main/m.gguf", None).unwrap().unwrap();
    assert_eq!(fs::read(again.primary).unwrap(), b"weights");
}

#[test]
fn the_same_bytes_under_two_keys_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    put(&store, "hf/a/b/main/x.gguf", "x.gguf", b"same");
    let second = put(&store, "pypi/p/1/y.gguf", "y.gguf", b"same");
    assert_eq!(fs::read(&second.primary).unwrap(), b"same");
    let entries = store.entries().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut keys = entries[0].keys.clone();
    keys.sort();
    assert_eq!(keys, ["hf/a/b/main/x.gguf", "pypi/p/1/y.gguf"]);
    assert_eq!(entries[0].size, 4);
}

#[test]
fn a_truncated_blob_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    put(&store, "k", "m.gguf", b"0123456789");
    fs::write(store.blob_path(&sha(b"0123456789")), b"01234").unwrap();
    assert!(store.lookup("k", None).unwrap().is_none());
}

#[test]
fn files_of_the_old_cache_layout_move_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let old = dir.path().join("presets/tiny/Tiny.gguf");
    fs::create_dir_all(old.parent().unwrap()).unwrap();
    fs::write(&old, b"old weights").unwrap();
    let hex = sha(b"old weights");
    fs::write(key::sibling(&old, ".sha256"), format!("{hex} 11\n")).unwrap();

    // A wrong expected checksum: the stale file is deleted, nothing is adopted.
    let other = dir.path().join("presets/other/O.gguf");
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    fs::write(&other, b"corrupt").unwrap();
    let ingest = store.ingest("o", "o").unwrap();
    assert!(ingest
        .adopt(&other, "O.gguf", Some(&"1".repeat(64)), ModelFormat::Gguf)
        .unwrap()
        .is_err());
    assert!(!other.exists());

    let ingest = store.ingest("pypi/tiny", "tiny").unwrap();
    let stored = ingest
        .adopt(&old, "Tiny.gguf", Some(&hex), ModelFormat::Gguf)
        .unwrap()
        .unwrap();
    assert_eq!(fs::read(&stored.primary).unwrap(), b"old weights");
    assert!(!old.exists() && !key::sibling(&old, ".sha256").exists());
    assert!(
        !dir.path().join("presets/tiny").exists(),
        "empty directory left"
    );
    assert!(store.lookup("pypi/tiny", Some(&hex)).unwrap().is_some());
}

#[test]
fn prune_evicts_the_least_recently_used_and_never_a_held_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let a = put(&store, "a", "a.gguf", &[1; 100]);
    let b = put(&store, "b", "b.gguf", &[2; 100]);
    let c = put(&store, "c", "c.gguf", &[3; 100]);
    drop((a, c));
    // `a` was used longest ago, then `c`; `b` is still held.
    let records = [("a", 300), ("c", 200), ("b", 100)];
    for (name, seconds_ago) in records {
        let hex = sha(&[match name {
            "a" => 1,
            "b" => 2,
            _ => 3,
        }; 100]);
        let record = IndexRecord {
            size: 100,
            last_used: unix_seconds(SystemTime::now()) - seconds_ago,
        };
        write_json(&store.index_path(&hex), &record).unwrap();
    }
    let entries = store.entries().unwrap();
    let keys: Vec<_> = entries.iter().map(|e| e.keys[0].as_str()).collect();
    assert_eq!(keys, ["a", "c", "b"]);
    assert_eq!(
        entries.iter().map(|e| e.held).collect::<Vec<_>>(),
        [false, false, true]
    );

    // Room for two: the oldest goes.
    let removed = store.prune(200).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].keys, ["a"]);
    assert!(store.lookup("a", None).unwrap().is_none());
    assert!(!store.blob_path(&sha(&[1; 100])).exists());

    // Room for none: `c` goes, the held `b` stays.
    let removed = store.prune(0).unwrap();
    assert_eq!(
        removed
            .iter()
            .map(|e| e.keys[0].as_str())
            .collect::<Vec<_>>(),
        ["c"]
    );
    assert!(store.lookup("b", None).unwrap().is_some());
    drop(b);

    // A process that died leaves a marker nobody refreshes: it stops counting.
    let hex = sha(&[2; 100]);
    let marker = dir
        .path()
        .join("held")
        .join(&hex)
        .join("elsewhere-999999-0");
    fs::create_dir_all(marker.parent().unwrap()).unwrap();
    fs::write(&marker, b"").unwrap();
    assert!(hold::is_held(dir.path(), &hex));
    age(&marker, lock::STALE_AFTER * 2);
    assert!(!hold::is_held(dir.path(), &hex));
    assert!(!marker.exists());
    assert_eq!(store.prune(0).unwrap().len(), 1);
}

#[test]
fn a_hold_of_a_process_gone_from_this_host_stops_counting_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let held = put(&store, "k", "m.gguf", b"x");
    let hex = sha(b"x");
    let ours = fs::read_dir(dir.path().join("held").join(&hex))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    // Ours names this host and this (live) process.
    assert!(
        ours.contains(&format!("-{}-", std::process::id())),
        "{ours}"
    );
    assert!(hold::is_held(dir.path(), &hex));
    drop(held);
    assert!(!hold::is_held(dir.path(), &hex));
    // The same host, a process id that is not running (beyond pid_max): not held.
    let host = ours.rsplitn(3, '-').nth(2).unwrap().to_owned();
    let dead = dir
        .path()
        .join("held")
        .join(&hex)
        .join(format!("{host}-4294967295-0"));
    fs::create_dir_all(dead.parent().unwrap()).unwrap();
    fs::write(&dead, b"").unwrap();
    assert!(!hold::is_held(dir.path(), &hex));
    assert!(!dead.exists());
}

#[test]
fn unreferenced_blobs_go_first_and_removing_a_key_keeps_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    drop(put(&store, "old", "o.gguf", &[1; 10]));
    drop(put(&store, "new", "n.gguf", &[2; 10]));
    assert!(store.remove("new").unwrap());
    assert!(!store.remove("new").unwrap());
    assert!(store.blob_path(&sha(&[2; 10])).exists());
    let removed = store.prune(10).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(removed[0].keys.is_empty());
    assert!(store.lookup("old", None).unwrap().is_some());
}

/// Commits `files` (path, bytes) as one model under `key`.
fn put_files(
    store: &ModelStore,
    key: &str,
    files: &[(&str, &[u8])],
    format: ModelFormat,
    primary: Option<&str>,
) -> StoredModel {
    let ingest = store.ingest(key, key).unwrap();
    let incoming = files
        .iter()
        .map(|(path, body)| {
            let hex = sha(body);
            let from = ingest.part_for(&hex);
            fs::write(&from, body).unwrap();
            IncomingFile {
                from,
                file: ModelFile {
                    path: (*path).to_owned(),
                    sha256: hex,
                    size: body.len() as u64,
                },
            }
        })
        .collect();
    ingest.commit_files(incoming, format, primary).unwrap()
}

#[test]
fn a_model_of_several_files_is_one_directory_held_and_evicted_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let shards: [(&str, &[u8]); 2] = [
        ("m-00001-of-00002.gguf", b"first shard"),
        ("m-00002-of-00002.gguf", b"second"),
    ];
    let stored = put_files(
        &store,
        "oci/r/split:q4",
        &shards,
        ModelFormat::Gguf,
        Some("m-00001-of-00002.gguf"),
    );
    assert_eq!(stored.primary, stored.dir.join("m-00001-of-00002.gguf"));
    assert_eq!(
        fs::read(stored.dir.join("m-00002-of-00002.gguf")).unwrap(),
        b"second"
    );
    assert_eq!(stored.size, 17);
    let listing: Vec<ModelFile> = shards
        .iter()
        .map(|(p, b)| ModelFile {
            path: (*p).to_owned(),
            sha256: sha(b),
            size: b.len() as u64,
        })
        .collect();
    assert_eq!(
        stored.digest.as_deref(),
        Some(&*format!("sha256:{}", listing_hex(&listing)))
    );

    // A checkpoint directory: nested paths, the directory is what an engine opens; a file it
    // shares with the split model is stored once.
    let checkpoint: [(&str, &[u8]); 2] = [("config.json", b"{}"), ("sub/x.bin", b"second")];
    let ckpt = put_files(
        &store,
        "oci/r/ckpt:f32",
        &checkpoint,
        ModelFormat::Safetensors,
        None,
    );
    assert_eq!(ckpt.primary, ckpt.dir);
    assert_eq!(fs::read(ckpt.dir.join("sub/x.bin")).unwrap(), b"second");
    assert_eq!(store.entries().unwrap().len(), 3);
    let again = store.lookup("oci/r/ckpt:f32", None).unwrap().unwrap();
    assert_eq!(again.dir, ckpt.dir);
    // An expected single checksum never matches a model of several files.
    assert!(store
        .lookup("oci/r/ckpt:f32", Some(&sha(b"{}")))
        .unwrap()
        .is_none());

    // Every file of a held model is held.
    drop(ckpt);
    drop(again);
    assert!(store
        .entries()
        .unwrap()
        .iter()
        .all(|e| e.held == (e.digest != format!("sha256:{}", sha(b"{}")))));
    assert_eq!(
        store.prune(0).unwrap().len(),
        1,
        "only config.json is unheld"
    );
    // The checkpoint lost a file: it is gone as a whole, and a lookup misses.
    assert!(store.lookup("oci/r/ckpt:f32", None).unwrap().is_none());
    drop(stored);
    let removed = store.prune(0).unwrap();
    assert_eq!(removed.len(), 2);
    assert!(store.lookup("oci/r/split:q4", None).unwrap().is_none());
    assert_eq!(
        fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
        0
    );
}

#[test]
fn a_tier_of_several_files_is_copied_in_and_checked() {
    let tier_dir = tempfile::tempdir().unwrap();
    let tier = ModelStore::new(tier_dir.path());
    let files: [(&str, &[u8]); 2] = [
        ("config.json", b"{\"a\":1}"),
        ("model.safetensors", b"weights"),
    ];
    drop(put_files(
        &tier,
        "k",
        &files,
        ModelFormat::Safetensors,
        None,
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let hit = tier.peek("k").unwrap();
    assert_eq!(hit.single_sha256(), None);
    let (stored, _) = store
        .ingest("k", "k")
        .unwrap()
        .copy_in(&hit)
        .unwrap()
        .unwrap();
    assert_eq!(
        fs::read(stored.dir.join("model.safetensors")).unwrap(),
        b"weights"
    );
    assert_eq!(stored.format, ModelFormat::Safetensors);
    drop(stored);

    // A damaged blob in the tier: nothing is used, nothing is left behind.
    let other = tempfile::tempdir().unwrap();
    let store = ModelStore::new(other.path());
    fs::write(tier.blob_path(&sha(b"weights")), b"weightZ").unwrap();
    let hit = tier.peek("k").unwrap();
    assert!(store
        .ingest("k", "k")
        .unwrap()
        .copy_in(&hit)
        .unwrap()
        .is_err());
    assert!(store.lookup("k", None).unwrap().is_none());
    let left: Vec<_> = fs::read_dir(other.path().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn paths_leaving_the_model_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let ingest = store.ingest("k", "k").unwrap();
    let from = ingest.part_for(&sha(b"x"));
    fs::write(&from, b"x").unwrap();
    let err = ingest
        .commit_files(
            vec![IncomingFile {
                from,
                file: ModelFile {
                    path: "../../etc/x".to_owned(),
                    sha256: sha(b"x"),
                    size: 1,
                },
            }],
            ModelFormat::Safetensors,
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("../../etc/x"), "{err}");
}
