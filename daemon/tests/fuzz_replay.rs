//! Replays every file of the fuzz seed corpus (`fuzz/seeds/<target>/`) and every kept
//! crasher (`fuzz/crashers/<target>/`) through the fuzz targets' entry points, as an
//! ordinary test: a crasher once fixed stays fixed.
//!
//! `MES_WRITE_FUZZ_CORPUS=1 cargo test -p mes-daemon --test fuzz_replay` rewrites the seed
//! corpus from valid encodings of real values.

use mes_daemon::fuzzing::targets;
use mes_daemon::replica::volume::{self, Payload, Replica};
use mes_protocol::access::membership::{Membership, Signed, SpaceGenesis, VolumeDecl};
use mes_protocol::crypto::envelope::{KeyEnvelope, KeySlot};
use mes_protocol::crypto::keys::{DeviceCert, KeyPair};
use mes_protocol::crypto::pairing::PairMessage;
use mes_protocol::crypto::seal::{BundleHeader, CipherSuite, SealedBundle, SymmetricKey};
use mes_protocol::ids::{Epoch, Generation, Seq, SpaceId, VolumeId, VolumeKind};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::api::{ApiCall, ApiRequest};
use mes_protocol::wire::codec::{encode, to_bytes};
use mes_protocol::wire::{ClientFrame, Reply, Request};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

/// Replays every seed and kept crasher of `targets` under `root` (`seeds/<target>/`,
/// `crashers/<target>/`); the number replayed, or the first file a target panics on.
fn replay(root: &Path, targets: &[(&str, mes_daemon::fuzzing::Target)]) -> Result<usize, String> {
    let mut replayed = 0;
    for (name, target) in targets {
        let corpus = files(&root.join("seeds").join(name));
        if corpus.is_empty() {
            return Err(format!("no seed corpus for fuzz target {name}"));
        }
        for f in corpus
            .iter()
            .chain(&files(&root.join("crashers").join(name)))
        {
            let data = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                return Err(format!("fuzz target {name} panics on {}", f.display()));
            }
            replayed += 1;
        }
    }
    Ok(replayed)
}

#[test]
fn corpus_and_kept_crashers_replay_without_panic() {
    if std::env::var_os("MES_WRITE_FUZZ_CORPUS").is_some() {
        write_corpus();
    }
    let replayed = replay(&fuzz_dir(), &targets()).unwrap_or_else(|e| panic!("{e}"));
    assert!(replayed >= targets().len());
}

#[test]
fn the_replay_catches_a_panicking_decoder() {
    // Control: the same replay, over a planted target that panics on one kept crasher,
    // fails and names the file; without that crasher it passes.
    let planted: fn(&[u8]) = |d| assert!(d.first() != Some(&0xff), "planted crash");
    let root = tempfile::tempdir().unwrap();
    for (dir, name, bytes) in [("seeds", "fine", [1u8, 2]), ("crashers", "boom", [0xff, 1])] {
        let d = root.path().join(dir).join("planted");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    }
    let err = replay(root.path(), &[("planted", planted)]).unwrap_err();
    assert!(err.contains("crashers/planted/boom"), "{err}");
    std::fs::remove_file(root.path().join("crashers/planted/boom")).unwrap();
    assert_eq!(replay(root.path(), &[("planted", planted)]), Ok(1));
}

fn write(target: &str, name: &str, bytes: Vec<u8>) {
    let dir = fuzz_dir().join("seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[allow(
    clippy::too_many_lines,
    reason = "one replay per target and its control, read top to bottom"
)]
fn write_corpus() {
    let mut rng = rand::thread_rng();
    let principal = KeyPair::generate(&mut rng);
    let device = KeyPair::generate(&mut rng);
    let cert = DeviceCert::for_device(&principal, &device, "phone", UnixMillis(1));
    let (space, volume) = (SpaceId([1; 16]), VolumeId([2; 16]));
    let key = SymmetricKey::from_bytes([7; 32]);
    let mut doc = Replica::new(VolumeKind::Automerge, &[3; 32]);
    let Replica::Doc(d) = &mut doc else {
        unreachable!()
    };
    let change = d.set("allergy", "penicillin").unwrap();
    let bundle = SealedBundle::seal(
        &key,
        BundleHeader {
            suite: CipherSuite::XChaCha20Poly1305,
            space,
            volume,
            generation: Generation(0),
            epoch: Epoch(0),
            author: device.device_id(),
            nonce: [0; 24],
            prev: Some([9; 32]),
        },
        &device.signing,
        &mut rng,
        &volume::encode(&change),
    );
    let genesis = Signed::sign(
        SpaceGenesis {
            space,
            owner: principal.principal_id(),
            inbox_recipient: principal.age.recipient(),
            created_at: UnixMillis(1),
        },
        &principal.signing,
    );
    let mut membership = Membership::new(genesis.clone()).unwrap();
    membership
        .declare(Signed::sign(
            VolumeDecl {
                space,
                volume,
                kind: VolumeKind::Automerge,
                generation: Generation(0),
                label: "notes".into(),
            },
            &principal.signing,
        ))
        .unwrap();
    let envelope = KeyEnvelope::wrap(
        KeySlot {
            space,
            volume,
            generation: Generation(0),
            epoch: Epoch(0),
        },
        &key,
        device.device_id(),
        &device.age.recipient(),
        &principal.signing,
    )
    .unwrap();

    write(
        "wire_client_frame",
        "hello",
        encode(&ClientFrame::Hello {
            cert: cert.clone(),
            signature: device.signing.sign(b"ctx", b"challenge"),
            vouch: Some(mes_protocol::crypto::recovery::AdmissionVouch::sign(
                &principal.signing,
                &cert,
            )),
        }),
    );
    write(
        "wire_client_frame",
        "append",
        encode(&ClientFrame::Request {
            id: 1,
            body: Request::Append {
                space,
                volume,
                bundles: vec![bundle.clone()],
            },
        }),
    );
    write(
        "wire_client_frame",
        "register",
        encode(&ClientFrame::Request {
            id: 2,
            body: Request::RegisterSpace { genesis },
        }),
    );
    write(
        "wire_relay_frame",
        "bundles",
        encode(&mes_protocol::wire::RelayFrame::Response {
            id: 1,
            result: Ok(Reply::Bundles {
                items: vec![(Seq(1), bundle.clone())],
                head: Seq(1),
                pruned_upto: None,
            }),
        }),
    );
    write(
        "wire_relay_frame",
        "membership",
        encode(&mes_protocol::wire::RelayFrame::Response {
            id: 2,
            result: Ok(Reply::Membership {
                membership: Box::new(membership.clone()),
                devices: vec![cert],
            }),
        }),
    );
    for (i, call) in [
        ApiCall::Status,
        ApiCall::NoteSet {
            key: "allergy".into(),
            value: "penicillin".into(),
        },
    ]
    .into_iter()
    .enumerate()
    {
        write(
            "api_request",
            &format!("call{i}"),
            encode(&ApiRequest {
                id: i as u64,
                space: Some(space),
                call,
            }),
        );
    }
    write(
        "api_frame",
        "event",
        encode(&mes_protocol::wire::api::ApiFrame::Event(
            mes_protocol::wire::api::ApiEvent::VolumeChanged { space, volume },
        )),
    );
    write("envelope", "wrapped", to_bytes(&envelope));
    write("bundle", "sealed", to_bytes(&bundle));
    write("membership", "declared", to_bytes(&membership));
    write(
        "pair_message",
        "confirm",
        to_bytes(&PairMessage::Confirm {
            role: mes_protocol::crypto::pairing::PairingRole::Existing,
            mac: [5; 32],
        }),
    );
    write(
        "pair_message",
        "spake",
        to_bytes(&PairMessage::Spake(vec![1; 33])),
    );
    write("volume_payload", "change", volume::encode(&change));
    write(
        "volume_payload",
        "snapshot",
        volume::encode(&Payload::Snapshot(d.save())),
    );
}
