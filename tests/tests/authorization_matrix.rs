//! Issue 22, item 11: the adversarial authorization matrix. Every kind of request
//! (`RequestKind`, so a new variant cannot be forgotten) is sent by every kind of caller,
//! with ids from the space under test, from its inbox, from another person's space, and
//! mixed (this space's id with the other space's volume and blob ids), over real QUIC to
//! a real relay (sled, or PostgreSQL with `MES_TEST_BACKEND=postgres`). The answer of
//! each cell is compared with `tests/data/authorization-matrix.txt`, a table reviewed like
//! code; any cell that differs fails, and so does a kind the table does not list.
//!
//! Requests are built to be harmless when allowed (remove a role nobody holds, re-list a
//! listed device, a snapshot past the head, a hand-over to oneself), so a cell that
//! passes changes nothing the next cell depends on; emergency access, which releases keys,
//! runs last. Control: the same matrix against a relay that skips its access checks (a
//! planted bug) differs from the table.
//!
//! `MES_MATRIX_WRITE=1` writes the table from what the relay answers, to review the diff.
//!
//! Over 600 lines: the matrix's requests for every kind, and its control.

use mes_daemon::sync::relay_client::{ClientError, RelayClient, RelayTarget};
use mes_protocol::access::escrow::EscrowMode;
use mes_protocol::access::membership::{
    DeviceRevocation, Grant, Role, Signed, SpaceGenesis, VolumeDecl,
};
use mes_protocol::crypto::envelope::{KeyEnvelope, KeySlot};
use mes_protocol::crypto::keys::{AgeSecret, DeviceCert, SigningSecret};
use mes_protocol::crypto::seal::{SealedBundle, SymmetricKey};
use mes_protocol::ids::{BlobId, DeviceId, Epoch, Generation, PrincipalId, Seq, SpaceId, VolumeId};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::{Reply, Request, RequestKind};
use mes_relay::handler::Misbehaviour;
use mes_tests::{
    connect_as, device, home, listed, online, owner, pair, registered, rpps, volume, RawPrincipal,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use strum::IntoEnumIterator;

/// The kinds of caller, in the table's column order.
const CALLERS: [&str; 13] = [
    "owner",
    "owner-2",
    "admin",
    "reader",
    "feeder",
    "pro",
    "withdrawn",
    "blocked",
    "break-glass",
    "revoked",
    "former",
    "stranger",
    "listed",
];

/// Where the ids come from, in the table's row order.
const TARGETS: [&str; 4] = ["own", "inbox", "other", "mixed"];

const STRUCTURE: &str = "Maison de santé du Parc";

fn table_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/authorization-matrix.txt")
}

/// One caller: its connection and what it signs with.
struct Caller {
    name: &'static str,
    conn: RelayClient,
    principal: SigningSecret,
    device: DeviceId,
    device_key: SigningSecret,
}

impl Caller {
    fn id(&self) -> PrincipalId {
        PrincipalId(self.principal.public())
    }
}

/// The ids a row uses.
struct Target {
    space: SpaceId,
    volume: VolumeId,
    decl: VolumeDecl,
    blob: BlobId,
    /// The volume whose document references `blob`.
    blob_volume: VolumeId,
    owner: PrincipalId,
    owner_cert: DeviceCert,
}

fn copy(s: &SigningSecret) -> SigningSecret {
    SigningSecret::from_bytes(&s.to_bytes())
}

fn raw_caller(name: &'static str, p: &RawPrincipal, conn: RelayClient) -> Caller {
    Caller {
        name,
        conn,
        principal: copy(&p.principal.signing),
        device: p.cert.body.device,
        device_key: copy(&p.device.signing),
    }
}

async fn daemon_caller(
    name: &'static str,
    d: &mes_daemon::daemon::Daemon,
    t: &RelayTarget,
) -> anyhow::Result<Caller> {
    let (principal, device, device_key) = {
        (
            copy(&d.identity().principal.signing),
            d.identity().cert.body.device,
            copy(&d.identity().device.signing),
        )
    };
    let (conn, _pushes) = connect_as(d, t).await?;
    Ok(Caller {
        name,
        conn,
        principal,
        device,
        device_key,
    })
}

/// A harmless request of `kind` from `c` with the ids of `t`.
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
fn build(kind: RequestKind, c: &Caller, t: &Target) -> Request {
    let now = UnixMillis::now();
    let (space, volume) = (t.space, t.volume);
    match kind {
        // Someone else's existing space: never taken over.
        RequestKind::RegisterSpace => Request::RegisterSpace {
            genesis: Signed::sign(
                SpaceGenesis {
                    space,
                    owner: c.id(),
                    inbox_recipient: AgeSecret::generate().recipient(),
                    created_at: now,
                },
                &c.principal,
            ),
        },
        // The volume's own declaration, signed again by the caller.
        RequestKind::DeclareVolume => Request::DeclareVolume {
            decl: Signed::sign(
                VolumeDecl {
                    space,
                    ..t.decl.clone()
                },
                &c.principal,
            ),
        },
        // Removes a role nobody holds.
        RequestKind::PutGrant => Request::PutGrant {
            grant: Signed::sign(
                Grant {
                    space,
                    volume: None,
                    principal: PrincipalId([0x77; 32]),
                    role: None,
                    version: now.0,
                    issued_at: now,
                    expires_at: None,
                },
                &c.principal,
            ),
        },
        // A device nobody has.
        RequestKind::RevokeDevice => Request::RevokeDevice {
            revocation: Signed::sign(
                DeviceRevocation {
                    device: DeviceId([0x55; 32]),
                    revoked_at: now,
                },
                &c.principal,
            ),
        },
        RequestKind::GetMembership => Request::GetMembership { space },
        RequestKind::ListSpaces => Request::ListSpaces,
        // Empty: past the access check it is refused as a bad frame.
        RequestKind::Append => Request::Append {
            space,
            volume,
            bundles: vec![],
        },
        RequestKind::Fetch => Request::Fetch {
            space,
            volume,
            after: Seq(0),
            max: 1,
        },
        // Past the log's head: refused after the checks.
        RequestKind::PutSnapshot => Request::PutSnapshot {
            space,
            volume,
            upto: Seq(u64::MAX),
            snapshot: bundle(space, volume, c),
            prune: false,
        },
        // The same generation again: refused after the checks.
        RequestKind::NewGeneration => Request::NewGeneration {
            decl: Signed::sign(
                VolumeDecl {
                    space,
                    ..t.decl.clone()
                },
                &c.principal,
            ),
            after: Seq(u64::MAX),
            snapshot: bundle(space, volume, c),
        },
        RequestKind::GetSnapshot => Request::GetSnapshot { space, volume },
        RequestKind::Subscribe => Request::Subscribe {
            space,
            volumes: vec![volume],
        },
        // To a device nobody has.
        RequestKind::PutEnvelopes => Request::PutEnvelopes {
            envelopes: vec![KeyEnvelope::wrap(
                KeySlot {
                    space,
                    volume,
                    generation: Generation(0),
                    epoch: Epoch(999),
                },
                &SymmetricKey::generate(&mut rand::rngs::OsRng),
                DeviceId([0x66; 32]),
                &AgeSecret::generate().recipient(),
                &c.principal,
            )
            .expect("wrap")],
        },
        RequestKind::GetEnvelopes => Request::GetEnvelopes { space },
        RequestKind::ListDevices => Request::ListDevices { principal: t.owner },
        // Chunk 0 of a committed file, rewritten.
        RequestKind::PutBlobChunk => Request::PutBlobChunk {
            space,
            volume: t.blob_volume,
            blob: t.blob,
            index: 0,
            last: false,
            data: b"overwritten".to_vec(),
        },
        RequestKind::GetBlobChunk => Request::GetBlobChunk {
            space,
            volume: t.blob_volume,
            blob: t.blob,
            index: 0,
        },
        // The document's file bound to the target volume as well.
        RequestKind::BindBlob => Request::BindBlob {
            space,
            volume: t.volume,
            blob: t.blob,
        },
        RequestKind::PairOpen => Request::PairOpen {
            rendezvous: rand::random(),
        },
        // An old version: refused after the checks.
        RequestKind::PutChoices => Request::PutChoices {
            choices: Signed::sign(
                mes_protocol::access::choices::PersonChoices {
                    space,
                    version: 0,
                    issued_at: now,
                    refuse_centre15: false,
                    refuse_break_glass: false,
                    blocked: Default::default(),
                    blocked_structures: Default::default(),
                    attending: None,
                    policy: None,
                    care_teams: Default::default(),
                },
                &c.principal,
            ),
        },
        // To oneself: refused after the checks.
        RequestKind::HandOver => Request::HandOver {
            handover: Signed::sign(
                mes_protocol::access::authority::Handover {
                    space,
                    to: c.id(),
                    inbox_recipient: AgeSecret::generate().recipient(),
                    former_owner_role: None,
                    at: now,
                },
                &c.principal,
            ),
        },
        RequestKind::GetHubInfo => Request::GetHubInfo,
        // Releases a hold nobody has.
        RequestKind::Enrol => Request::Enrol {
            request: mes_protocol::enrolment::EnrolRequest::Hold {
                nir: mes_protocol::enrolment::nir::Nir::with_key("1850578006084"),
                release: true,
            },
        },
        RequestKind::GetRecoveryEnvelopes => Request::GetRecoveryEnvelopes { space },
        RequestKind::EmergencyAccess => Request::EmergencyAccess {
            space,
            mode: EscrowMode::BreakGlass,
        },
        RequestKind::GetHistory => Request::GetHistory { space, after: 0 },
        RequestKind::ListStructure => Request::ListStructure {
            structure: STRUCTURE.into(),
        },
        RequestKind::FindProfessional => Request::FindProfessional {
            rpps: rpps(1).to_string(),
        },
        RequestKind::PairSend => Request::PairSend {
            rendezvous: rand::random(),
            body: b"hello".to_vec(),
        },
        RequestKind::GetCatalogue => Request::GetCatalogue,
        // The target's owner's listed device, listed again.
        RequestKind::ListDevice => Request::ListDevice {
            cert: t.owner_cert.clone(),
        },
        RequestKind::SetAdmissionKey => Request::SetAdmissionKey {
            key: PrincipalId(rand::random()),
        },
    }
}

/// A bundle the caller's device signs, bound to (space, volume), under a key of its own.
fn bundle(space: SpaceId, volume: VolumeId, c: &Caller) -> SealedBundle {
    mes_tests::foreign_bundle(space, volume, c.device, &c.device_key)
}

/// What a cell shows: `ok`, the refusal's code, or `closed` (the connection is gone).
fn outcome(r: Result<Reply, ClientError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(ClientError::Refused(w)) => {
            let code = format!("{:?}", w.code);
            // NotMember -> not-member
            let mut out = String::new();
            for (i, ch) in code.chars().enumerate() {
                if ch.is_uppercase() && i > 0 {
                    out.push('-');
                }
                out.extend(ch.to_lowercase());
            }
            out
        }
        Err(ClientError::Closed(_)) => "closed".into(),
    }
}

/// The order requests run in: emergency access last (it releases keys).
fn kinds() -> Vec<RequestKind> {
    let mut k: Vec<RequestKind> = RequestKind::iter()
        .filter(|k| *k != RequestKind::EmergencyAccess)
        .collect();
    k.push(RequestKind::EmergencyAccess);
    k
}

type Table = BTreeMap<(String, String), Vec<String>>;

/// Runs every cell against a relay misbehaving as told; returns the table it answers.
#[allow(
    clippy::too_many_lines,
    reason = "a user's scenario, read top to bottom"
)]
async fn run_matrix(m: Misbehaviour) -> anyhow::Result<Table> {
    let o = owner(m).await?;
    let t = &o.t;
    // The owner's second device, and a third one that will be revoked.
    let b = device(o.dir.path(), "b", t).await?;
    pair(&o.a.daemon, &b.daemon).await?;
    let c = device(o.dir.path(), "c", t).await?;
    pair(&o.a.daemon, &c.daemon).await?;
    // Another person, with a space, a document and an inbox of their own.
    let p = device(o.dir.path(), "p", t).await?;
    online(&p.daemon).await?;
    let p_space = home(&p.daemon).await?;
    registered(&p, p_space).await?;

    // Every caller but the owner's three devices is a principal of its own.
    let raw: BTreeMap<&str, RawPrincipal> = CALLERS
        .into_iter()
        .filter(|n| !matches!(*n, "owner" | "owner-2" | "revoked"))
        .map(|n| (n, RawPrincipal::new(n)))
        .collect();
    for r in raw.values() {
        r.connect(t).await?;
    }
    o.relay
        .relay
        .import_directory(vec![
            listed(raw["pro"].id(), 1, "Dr Doc", "10"),
            listed(raw["withdrawn"].id(), 2, "Dr Partie", "10"),
            listed(raw["blocked"].id(), 3, "Dr Bloqué", "10"),
            listed(raw["break-glass"].id(), 4, "Dr Samu", "10"),
            listed(raw["listed"].id(), 5, "Dr Inconnu", "10"),
        ])
        .await?;
    let (a, space) = (&o.a.daemon, o.space);
    let emergency = volume(a, space, "emergency").expect("emergency volume");
    let inbox = volume(a, space, "inbox").expect("inbox volume");
    a.grant(space, raw["admin"].id(), Some(Role::Admin)).await?;
    a.grant(space, raw["feeder"].id(), Some(Role::Append))
        .await?;
    a.grant(space, raw["former"].id(), Some(Role::Read)).await?;
    a.grant(space, raw["former"].id(), None).await?;
    a.consent(space, rpps(1).as_str(), &[]).await?;
    a.consent(space, rpps(2).as_str(), &[]).await?;
    a.withdraw(space, raw["withdrawn"].id()).await?;
    a.consent(space, rpps(3).as_str(), &[]).await?;
    a.block(
        space,
        mes_daemon::access::choices::BlockTarget::Professional(rpps(3).to_string()),
    )
    .await?;
    let (owner_conn, _) = connect_as(a, t).await?;
    // A reader of the emergency volume alone. (The key is copied out first: the state's
    // guard held across the request's await blocked the daemon's own tasks.)
    let owner_key = copy(&a.identity().principal.signing);
    let now = UnixMillis::now();
    owner_conn
        .request(Request::PutGrant {
            grant: Signed::sign(
                Grant {
                    space,
                    volume: Some(emergency),
                    principal: raw["reader"].id(),
                    role: Some(Role::Read),
                    version: now.0,
                    issued_at: now,
                    expires_at: None,
                },
                &owner_key,
            ),
        })
        .await?;
    raw["break-glass"]
        .connect(t)
        .await?
        .request(Request::EmergencyAccess {
            space,
            mode: EscrowMode::BreakGlass,
        })
        .await?;
    // A document in each space: its blob is the file the blob rows ask for.
    let (_, blob_o, blob_volume_o) =
        mes_tests::uploaded_document(&o.a.daemon, space, o.dir.path(), "Compte rendu").await?;
    let (_, blob_p, blob_volume_p) =
        mes_tests::uploaded_document(&p.daemon, p_space, o.dir.path(), "Compte rendu").await?;

    let mut callers = vec![
        daemon_caller("owner", a, t).await?,
        daemon_caller("owner-2", &b.daemon, t).await?,
    ];
    // The revoked device's connection is opened before its revocation: it must end.
    let revoked = daemon_caller("revoked", &c.daemon, t).await?;
    let c_device = revoked.device;
    a.revoke_device(c_device).await?;
    for name in &CALLERS[2..] {
        if *name == "revoked" {
            continue;
        }
        let r = &raw[name];
        callers.push(raw_caller(name, r, r.connect(t).await?));
    }
    callers.push(revoked);
    callers.sort_by_key(|c| CALLERS.iter().position(|n| *n == c.name));
    // And it cannot come back with what it holds.
    assert!(
        connect_as(&c.daemon, t).await.is_err(),
        "a revoked device connected again"
    );

    let decl_of = |d: &mes_daemon::daemon::Daemon, s: SpaceId, v: VolumeId| {
        d.membership_of(s)
            .ok()
            .and_then(|m| m.volume(v).cloned())
            .expect("a declared volume")
    };
    let o_cert = a.identity().cert.clone();
    let p_cert = p.daemon.identity().cert.clone();
    let p_emergency = volume(&p.daemon, p_space, "emergency").expect("emergency volume");
    let targets = [
        Target {
            space,
            volume: emergency,
            decl: decl_of(a, space, emergency),
            blob: blob_o,
            blob_volume: blob_volume_o,
            owner: o_cert.body.principal,
            owner_cert: o_cert.clone(),
        },
        Target {
            space,
            volume: inbox,
            decl: decl_of(a, space, inbox),
            blob: blob_o,
            blob_volume: blob_volume_o,
            owner: o_cert.body.principal,
            owner_cert: o_cert.clone(),
        },
        Target {
            space: p_space,
            volume: p_emergency,
            decl: decl_of(&p.daemon, p_space, p_emergency),
            blob: blob_p,
            blob_volume: blob_volume_p,
            owner: p_cert.body.principal,
            owner_cert: p_cert.clone(),
        },
        Target {
            space,
            volume: p_emergency,
            decl: decl_of(&p.daemon, p_space, p_emergency),
            blob: blob_p,
            blob_volume: blob_volume_p,
            owner: p_cert.body.principal,
            owner_cert: p_cert,
        },
    ];
    let mut table = Table::new();
    for kind in kinds() {
        for (name, target) in TARGETS.iter().zip(&targets) {
            let mut row = Vec::new();
            for c in &callers {
                // A request left unanswered is a cell too (and never hangs the matrix).
                let asked = c.conn.request(build(kind, c, target));
                row.push(
                    match tokio::time::timeout(Duration::from_secs(10), asked).await {
                        Ok(r) => outcome(r),
                        Err(_) => "no-answer".into(),
                    },
                );
            }
            let kind: &'static str = kind.into();
            table.insert((kind.to_string(), name.to_string()), row);
        }
    }
    Ok(table)
}

fn render(table: &Table) -> String {
    let mut out = String::from(
        "# The authorization matrix (issue 22, item 11): what the relay answers each kind of\n\
         # request (rows) from each kind of caller (columns), with ids from the space under\n\
         # test (own: its emergency volume; inbox: its inbox), from another person's space\n\
         # (other), or this space's id with the other space's volume and file (mixed).\n\
         # Read by tests/tests/authorization_matrix.rs; reviewed like code. Cells: ok, the\n\
         # refusal's code, closed (the revoked device's connection is cut), or no-answer.\n",
    );
    let mut widths = vec![20usize, 6];
    widths.extend(CALLERS.iter().map(|c| c.len().max(11)));
    let line = |cells: Vec<&str>| -> String {
        let mut l = String::new();
        for (c, w) in cells.iter().zip(&widths) {
            l.push_str(&format!("{c:<w$} ", w = *w));
        }
        l.trim_end().to_string() + "\n"
    };
    let mut head = vec!["request", "target"];
    head.extend(CALLERS);
    out.push_str(&line(head));
    for ((kind, target), row) in table {
        let mut cells = vec![kind.as_str(), target.as_str()];
        cells.extend(row.iter().map(String::as_str));
        out.push_str(&line(cells));
    }
    out
}

fn parse(text: &str) -> anyhow::Result<Table> {
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let head: Vec<&str> = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("the table has no header"))?
        .split_whitespace()
        .collect();
    anyhow::ensure!(
        head[2..] == CALLERS,
        "the table's columns are {:?}, the test's callers {CALLERS:?}",
        &head[2..]
    );
    let mut table = Table::new();
    for l in lines {
        let cells: Vec<&str> = l.split_whitespace().collect();
        anyhow::ensure!(
            cells.len() == head.len(),
            "row {l:?} has {} cells, not {}",
            cells.len(),
            head.len()
        );
        table.insert(
            (cells[0].into(), cells[1].into()),
            cells[2..]
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
        );
    }
    Ok(table)
}

fn differences(expected: &Table, got: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for (key, row) in got {
        match expected.get(key) {
            None => out.push(format!("{} {}: not in the table", key.0, key.1)),
            Some(want) => {
                for ((caller, w), g) in CALLERS.iter().zip(want).zip(row) {
                    if w != g {
                        out.push(format!(
                            "{} {} by {caller}: the table says {w}, the relay answered {g}",
                            key.0, key.1
                        ));
                    }
                }
            }
        }
    }
    for key in expected.keys().filter(|k| !got.contains_key(*k)) {
        out.push(format!(
            "{} {}: in the table, not a request kind",
            key.0, key.1
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_from_every_caller_answers_as_the_table_says() -> anyhow::Result<()> {
    let got = run_matrix(Misbehaviour::default()).await?;
    let cells = got.len() * CALLERS.len();
    println!(
        "authorization matrix: {} request kinds x {} targets x {} callers = {cells} cells",
        RequestKind::iter().count(),
        TARGETS.len(),
        CALLERS.len()
    );
    if std::env::var_os("MES_MATRIX_WRITE").is_some() {
        std::fs::write(table_path(), render(&got))?;
    }
    let expected = parse(&std::fs::read_to_string(table_path())?)?;
    let wrong = differences(&expected, &got);
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells differ from {}:\n{}",
        wrong.len(),
        table_path().display(),
        wrong.join("\n")
    );
    assert_eq!(expected.len(), RequestKind::iter().count() * TARGETS.len());

    // Control: a relay with its access checks removed fails the same table.
    let planted = run_matrix(Misbehaviour {
        skip_access_check: true,
        ..Default::default()
    })
    .await?;
    let wrong = differences(&expected, &planted);
    assert!(
        !wrong.is_empty(),
        "control: the table passed against a relay that checks nothing"
    );
    Ok(())
}

/// The table's own checks: a kind it does not list, or a cell changed, is caught.
#[test]
fn the_comparison_catches_a_missing_row_and_a_changed_cell() {
    let expected = parse(&std::fs::read_to_string(table_path()).unwrap()).unwrap();
    let mut got = expected.clone();
    assert!(differences(&expected, &got).is_empty());
    let key = got.keys().next().unwrap().clone();
    got.get_mut(&key).unwrap()[0] = "changed".into();
    assert_eq!(differences(&expected, &got).len(), 1);
    let mut fewer = expected.clone();
    fewer.remove(&key);
    assert_eq!(differences(&fewer, &expected).len(), 1);
}
